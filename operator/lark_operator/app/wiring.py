"""The operator's long-lived parts, built once per run and handed to the kopf handlers as
their `memo` (no global locator): clients, probe scheduler, reconciler, Secret watches,
/health. `report()` is what /health serves."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from lark_operator import __version__, metrics
from lark_operator.app.events import EventsServer
from lark_operator.app.health import HealthServer, Reports
from lark_operator.app.leader import LeaderElector, default_namespace
from lark_operator.app.watch import measure_loop_lag, watch_namespaces, watch_secrets
from lark_operator.kube import Auth, KubeClient, KubeError
from lark_operator.openplatform import OpenPlatformClient
from lark_operator.probes.scheduler import ProbeScheduler
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.reconcile.storekeys import KeyDirectory
from lark_operator.reconcile.tickets import TicketBook
from lark_operator.settings import Settings
from lark_operator.vocabulary.names import STORE_APP_LABEL

log = logging.getLogger("lark_operator.app")

CLUSTER_SECRETS = "clusterResourceSecrets"  # the watch_state entry of that namespace's watch


@dataclass(eq=False)
class Wiring:
    settings: Settings
    health: HealthServer = field(init=False)
    auth: Auth | None = None  # loaded once: both Kubernetes clients share it
    kube: KubeClient | None = None
    client: OpenPlatformClient | None = None
    probes: ProbeScheduler | None = None
    reconciler: Reconciler | None = None
    # Store apps: every replica (standbys too) answers callbacks and stores tickets.
    tickets: TicketBook | None = None
    events: EventsServer | None = None
    # "standalone", or with --leader-elect "standby" until the Lease is held, then "leader"
    role: str = "standalone"
    election: LeaderElector | None = None
    watch_state: dict[str, str] = field(default_factory=lambda: {"secrets": "starting"})
    event_loop_lag: float = 0.0  # worst of the last 10 s (also a metric)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _health_started: bool = False

    def __post_init__(self) -> None:
        s = self.settings
        self.health = HealthServer(
            Reports(self.report, self.live, self.ready),
            health_port=s.health_port,
            metrics_port=s.metrics_port,
            bind_address=s.bind_address,
        )
        self.set_role(self.role)
        metrics.configure(larkapp_series=s.larkapp_metrics)
        # Every replica, standby included, says it exists (LarkOperatorAbsent/TargetDown).
        metrics.BUILD_INFO.labels(__version__).set(1)

    def __copy__(self) -> Wiring:
        # kopf shallow-copies its memo for every object it handles: every object must see
        # the same long-lived parts (and the reconciler made after the copies), so a copy
        # is this very object.
        return self

    def set_role(self, role: str) -> None:
        self.role = role
        metrics.LEADER.set(0 if role == "standby" else 1)

    async def start(self) -> None:
        """Clients, probe scheduler, reconciler, watches (kopf's startup handler)."""
        s = self.settings
        self.kube = self.kube or KubeClient(self.auth)
        self.client = OpenPlatformClient(rate_per_second=s.api_rate_per_second, burst=s.api_burst)
        self.probes = ProbeScheduler(max_concurrency=s.max_concurrent_probes)
        await self.probes.start()
        crns = self.cluster_resource_namespace  # ClusterLarkApps' App Secrets, store tickets
        self.reconciler = Reconciler(
            self.kube,
            self.client,
            s,
            probes=self.probes,
            tickets=self.store_parts(),
            cluster_namespace=crns,
        )
        await self._load_cluster_larkapps()
        await self.reconciler.start()
        namespaces: list[str | None] = list(s.namespaces) or [None]
        for ns in namespaces:
            watch = watch_secrets(self.kube, ns, self.reconciler.secret_changed, self.watch_state)
            self._tasks.append(asyncio.create_task(watch))
        # Tickets and tenants a standby stored from a callback (docs/store-apps.md): watched
        # from the first store app on (no store app, no access to those Secrets needed).
        if self.store_parts().used:
            self._watch_tickets()
        else:
            self.store_parts().on_first_use = self._watch_tickets
        if s.namespaces and crns not in s.namespaces:
            # A rotated App Secret is noticed there too. Its own /health entry, which does
            # not make the operator unhealthy: LarkApps naming their own app do not need it.
            watch = watch_secrets(
                self.kube, crns, self.reconciler.secret_changed, self.watch_state, CLUSTER_SECRETS
            )
            self._tasks.append(asyncio.create_task(watch))
        labels = watch_namespaces(
            self.kube, self.reconciler.clusters.namespaces.event, self.watch_state
        )
        self._tasks.append(asyncio.create_task(labels))
        self._tasks.append(asyncio.create_task(measure_loop_lag(self._loop_lag)))
        await self.start_health()
        where = "namespaces " + ",".join(s.namespaces) if s.namespaces else "all namespaces"
        log.info("lark-operator %s started (%s)", __version__, where)

    async def _load_cluster_larkapps(self) -> None:
        """Every ClusterLarkApp before kopf reports any LarkApp: one naming an app not seen
        yet would be refused, then admitted a moment later (a flap at every start)."""
        assert self.kube is not None and self.reconciler is not None
        try:
            for body in await self.kube.list_cluster_larkapps():
                self.reconciler.clusters.observe(body)
        except KubeError as e:  # no CRD (404) or no RBAC (403): LarkApps with appRef wait
            log.warning("cannot list ClusterLarkApps: %s", e)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for part in (self.reconciler, self.probes):
            if part is not None:
                await part.stop()
        if self.client:
            await self.client.close()
        await self.stop_events()
        if self.kube:
            await self.kube.close()
        await self.stop_health()

    @property
    def cluster_resource_namespace(self) -> str:
        """ClusterLarkApps' App Secrets are read only from here; store tickets live here."""
        if self.settings.cluster_resource_namespace:
            return self.settings.cluster_resource_namespace
        return self.auth.namespace if self.auth else default_namespace()

    def store_parts(self) -> TicketBook:
        """The ticket book (made once, with the first Kubernetes client)."""
        if self.tickets is None:
            assert self.kube is not None
            self.tickets = TicketBook(
                self.kube,
                self.cluster_resource_namespace,
                resend_interval=self.settings.ticket_resend_interval,
            )
        return self.tickets

    def _watch_tickets(self) -> None:
        assert self.kube is not None and self.tickets is not None
        watch = watch_secrets(
            self.kube,
            self.cluster_resource_namespace,
            self.tickets.secret_changed,
            self.watch_state,
            label_selector=STORE_APP_LABEL,
            key="tickets",
        )
        self._tasks.append(asyncio.create_task(watch))

    async def start_events(self) -> None:
        """Serve POST /lark/events (every replica; OSError when the port is taken)."""
        s = self.settings
        if self.events is not None or not s.events_port or self.kube is None:
            return
        directory = KeyDirectory(self.kube, list(s.namespaces))
        self.events = EventsServer(
            directory,
            self.store_parts(),
            port=s.events_port,
            bind_address=s.bind_address,
            max_age=s.event_max_age,
        )
        try:
            await self.events.start()
        except OSError:
            self.events = None
            raise

    async def stop_events(self) -> None:
        if self.events is not None:
            await self.events.stop()
            self.events = None

    async def start_health(self) -> None:
        """Serve /health and /metrics; a standby does so long before `start`."""
        if not self._health_started:
            await self.health.start()
            self._health_started = True

    async def stop_health(self) -> None:
        if self._health_started:
            self._health_started = False
            await self.health.stop()

    def _loop_lag(self, worst: float) -> None:
        self.event_loop_lag = worst
        metrics.EVENT_LOOP_LAG.set(worst)

    def live(self) -> dict[str, Any]:
        """The event loop answers (this runs on it); an acting replica whose scheduler
        died cannot recover by itself: a restart is what it needs."""
        rec = self.reconciler
        dead = rec is not None and rec.health().get("scheduler") == "stopped"
        return {"live": not dead, "role": self.role, "scheduler": "stopped" if dead else "ok"}

    def ready(self) -> dict[str, Any]:
        if self.role == "standby":
            return {"ready": True, "role": "standby"}
        rec = self.reconciler
        scheduler = rec.health().get("scheduler") if rec else "starting"
        watches = dict(self.watch_state)
        ready = scheduler == "running" and all(v == "watching" for v in watches.values())
        return {"ready": ready, "role": self.role, "scheduler": scheduler, "watches": watches}

    def report(self) -> dict[str, Any]:
        election = self.election.report() if self.election is not None else None
        if self.role == "standby":
            # Waiting for the Lease is this replica's job: healthy (a liveness probe must
            # not restart it), and nothing of the reconciler to report.
            return {
                "status": "healthy",
                "role": "standby",
                "version": __version__,
                "leaderElection": election,
            }
        rec = self.reconciler
        ctrl = rec.health() if rec else {"scheduler": "starting"}
        healthy = (
            rec is not None
            and ctrl.get("scheduler") == "running"
            and not self.watch_state.get("secrets", "").startswith("error")
        )
        report: dict[str, Any] = {
            "status": "healthy" if healthy else "unhealthy",
            "role": self.role,
            "version": __version__,
            "controller": ctrl,
            "eventLoopLagSeconds": self.event_loop_lag,
            "watches": dict(self.watch_state),
            "upstream": self.client.health() if self.client is not None else {},
            "probes": self.probes.stats() if self.probes is not None else {},
        }
        if election is not None:
            report["leaderElection"] = election
        return report
