"""The operator's long-lived parts, built once at start-up and shared by the handlers:
Kubernetes client, Open Platform client, probe scheduler, controller, Secret watch and
the health/metrics server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lark_operator import __version__, metrics
from lark_operator.controller import Controller
from lark_operator.health_server import HealthServer
from lark_operator.kube import KubeClient
from lark_operator.openplatform import OpenPlatformClient
from lark_operator.operator_settings import Settings

log = logging.getLogger("lark_operator.runtime")


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.kube: KubeClient | None = None
        self.client: OpenPlatformClient | None = None
        self.probes: Any = None
        self._controller: Controller | None = None
        self._watch_tasks: list[asyncio.Task[None]] = []
        self.watch_state: dict[str, Any] = {"secrets": "starting"}
        self.health = HealthServer(self)
        self.event_loop_lag = 0.0  # worst of the last 10 s (also a metric)
        self._health_started = False
        # "standalone", or with --leader-elect "standby" until the Lease is held, then
        # "leader"; `election` is the LeaderElector (for /health).
        self._role = ""
        self.role = "standalone"
        self.election: Any = None
        # Every replica, standby included, says it exists (LarkOperatorAbsent/TargetDown).
        metrics.BUILD_INFO.labels(__version__).set(1)

    @property
    def role(self) -> str:
        return self._role

    @role.setter
    def role(self, value: str) -> None:
        self._role = value
        metrics.LEADER.set(0 if value == "standby" else 1)

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            raise RuntimeError("operator not started")
        return self._controller

    async def start(self, kopf_settings: Any = None) -> None:
        from lark_operator.probes.scheduler import ProbeScheduler

        s = self.settings
        self.kube = KubeClient()
        self.client = OpenPlatformClient(rate_per_second=s.api_rate_per_second, burst=s.api_burst)
        self.probes = ProbeScheduler(max_concurrency=s.max_concurrent_probes)
        await self.probes.start()
        self._controller = Controller(self.kube, self.client, s, probes=self.probes)
        await self._controller.start()
        namespaces: list[str | None] = list(s.namespaces) if s.namespaces else [None]
        for ns in namespaces:
            self._watch_tasks.append(asyncio.create_task(self._watch_secrets(ns)))
        self._watch_tasks.append(asyncio.create_task(_measure_loop_lag(self._loop_lag)))
        await self.start_health()
        log.info(
            "lark-operator %s started (%s)",
            __version__,
            "namespaces " + ",".join(s.namespaces) if s.namespaces else "all namespaces",
        )

    async def start_health(self) -> None:
        """Serve /health and /metrics; a standby does so long before `start`."""
        if not self._health_started:
            self._health_started = True
            await self.health.start()

    async def stop_health(self) -> None:
        if self._health_started:
            self._health_started = False
            await self.health.stop()

    async def _watch_secrets(self, namespace: str | None) -> None:
        assert self.kube is not None
        while True:
            try:
                async for event, obj in self.kube.watch_secret_metadata(namespace):
                    self.watch_state["secrets"] = "watching"
                    meta = obj.get("metadata") or {}
                    self.controller.secret_changed(
                        event,
                        meta.get("namespace", ""),
                        meta.get("name", ""),
                        meta.get("resourceVersion"),
                    )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.watch_state["secrets"] = f"error: {type(e).__name__}"
                log.warning("Secret watch failed (%s); retrying in 5s", e)
                await asyncio.sleep(5)

    async def stop(self) -> None:
        for t in self._watch_tasks:
            t.cancel()
        await asyncio.gather(*self._watch_tasks, return_exceptions=True)
        if self._controller:
            await self._controller.stop()
        if self.probes:
            await self.probes.stop()
        if self.client:
            await self.client.close()
        if self.kube:
            await self.kube.close()
        await self.stop_health()

    def _loop_lag(self, worst: float) -> None:
        self.event_loop_lag = worst
        metrics.EVENT_LOOP_LAG.set(worst)

    def health_report(self) -> dict[str, Any]:
        election = self.election.report() if self.election is not None else None
        if self.role == "standby":
            # Waiting for the Lease is this replica's job: healthy (a liveness probe must
            # not restart it), and nothing of the controller to report.
            return {
                "status": "healthy",
                "role": "standby",
                "version": __version__,
                "leaderElection": election,
            }
        c = self._controller
        ctrl = c.health() if c else {"scheduler": "starting"}
        probes = self.probes.stats() if self.probes is not None else {}
        healthy = (
            bool(c)
            and ctrl.get("scheduler") == "running"
            and not str(self.watch_state.get("secrets", "")).startswith("error")
        )
        report = {
            "status": "healthy" if healthy else "unhealthy",
            "role": self.role,
            "version": __version__,
            "controller": ctrl,
            "eventLoopLagSeconds": self.event_loop_lag,
            "watches": dict(self.watch_state),
            "upstream": self.client.health() if self.client is not None else {},
            "probes": probes,
        }
        if election is not None:
            report["leaderElection"] = election
        return report


async def _measure_loop_lag(
    report: Callable[[float], None], tick: float = 0.25, window: float = 10.0
) -> None:
    """Sleep `tick` again and again; the oversleep is how long the loop was busy. The worst
    of each `window` is reported."""
    loop = asyncio.get_running_loop()
    worst, window_start = 0.0, loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(tick)
        worst = max(worst, loop.time() - before - tick)
        if loop.time() - window_start >= window:
            report(round(worst, 4))
            worst, window_start = 0.0, loop.time()


_RUNTIME: Runtime | None = None


def install(settings: Settings) -> Runtime:
    global _RUNTIME
    _RUNTIME = Runtime(settings)
    return _RUNTIME


def runtime() -> Runtime:
    if _RUNTIME is None:
        raise RuntimeError("runtime not installed: start through `lark-operator run`")
    return _RUNTIME
