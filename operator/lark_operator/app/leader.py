"""Leader election on a coordination.k8s.io/v1 Lease, as client-go / controller-runtime do it.

Two or more replicas run `lark-operator run --leader-elect`; the one holding the Lease acts
(kopf + the controller), the others wait as standbys and only serve /health. The rules are
client-go's (k8s.io/client-go/tools/leaderelection), so the Lease reads the same in
`kubectl get lease` as every other controller's:

- A candidate takes the Lease when it does not exist, when its holderIdentity is empty
  (released), or when the record has not changed for leaseDurationSeconds *as timed on the
  candidate's own clock since it first saw that record*. Comparing server timestamps would
  trust clocks of other machines; timing the observation locally does not.
- The holder renews every retry period. Time since the start of the last successful renewal
  is what counts: the start, because the apiserver may have committed the write (and a
  standby seen it) before the answer came back.
- A holder that has not renewed for renew_deadline (< lease duration) has lost: it must stop
  acting at once. The margin between the two is what keeps two replicas from ever acting
  together. `Watchdog` enforces it from a thread, so a stalled event loop cannot delay it.
- Releasing (graceful shutdown, after acting has stopped) empties holderIdentity and sets
  leaseDurationSeconds to 1, so a standby takes over at its next retry, not a lease later.

Writes are optimistic (PUT with resourceVersion): of two candidates racing for an expired
Lease exactly one succeeds, the other gets 409 Conflict and stays a standby.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lark_operator.kube import Conflict

log = logging.getLogger("lark_operator.leader")

SA_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class LeaseAPI(Protocol):
    """What the elector needs from kube.KubeClient (a fake in unit tests)."""

    async def get_lease(
        self, ns: str, name: str, *, timeout: float = ...
    ) -> dict[str, Any] | None: ...

    async def create_lease(
        self, ns: str, body: dict[str, Any], *, timeout: float = ...
    ) -> dict[str, Any]: ...

    async def replace_lease(
        self, ns: str, name: str, body: dict[str, Any], *, timeout: float = ...
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        """client-go's constraints: without them a holder could still be acting when a
        standby (rightly) decides the Lease has expired."""
        if not self.retry_period > 0:
            raise ValueError("--retry-period must be > 0")
        if not self.renew_deadline > self.retry_period * 1.2:
            raise ValueError("--renew-deadline must be more than 1.2 x --retry-period")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("--lease-duration must be more than --renew-deadline")
        if not self.identity:
            raise ValueError("leader election identity must not be empty")


def default_identity() -> str:
    """Pod name (HOSTNAME) plus a random suffix: a restarted pod with the same name is a new
    candidate, never mistaken for the holder it replaces."""
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "lark-operator"
    return f"{host}_{uuid.uuid4().hex[:8]}"


def default_namespace(path: str = SA_NAMESPACE_PATH) -> str:
    """The pod's own namespace (from its service account), else 'default'."""
    try:
        with open(path) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def micro_time(ts: float) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds), as Lease timestamps are written."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: LeaseAPI,
        config: ElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ):
        config.validate()
        self.kube, self.config = kube, config
        self.clock, self.wall, self.rng, self.sleep = clock, wall, rng, sleep
        self.is_leader = False
        self.holder: str | None = None  # as last seen
        self.transitions = 0
        self._observed: dict[str, Any] | None = None  # the Lease spec as last seen
        self._observed_at = 0.0  # local clock when that spec was first seen
        # Local clock at the start of the last successful acquire/renew; read by the
        # watchdog thread (a float assignment is atomic in CPython).
        self.renewed_at: float | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    # --- one attempt ------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """One round trip (or two): True when we hold the Lease afterwards."""
        c = self.config
        started = self.clock()
        timeout = c.renew_deadline
        lease = await self.kube.get_lease(c.namespace, c.name, timeout=timeout)
        now = micro_time(self.wall())
        if lease is None:
            spec = self._spec(now, now, 0)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": c.name, "namespace": c.namespace},
                "spec": spec,
            }
            try:
                created = await self.kube.create_lease(c.namespace, body, timeout=timeout)
            except Conflict:
                return False  # another candidate created it first
            return self._won(created, started)
        spec = dict(lease.get("spec") or {})
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec):
            if self.is_leader:
                log.error("leader Lease taken by %s", holder)
                self.is_leader = False
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new = self._spec(spec.get("acquireTime") or now, now, transitions)
        else:
            new = self._spec(now, now, transitions + 1)
        lease["spec"] = new  # metadata.resourceVersion stays: the write is conditional
        try:
            updated = await self.kube.replace_lease(c.namespace, c.name, lease, timeout=timeout)
        except Conflict:
            return False
        return self._won(updated, started)

    def _spec(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed, self._observed_at = spec, self.clock()
            holder = spec.get("holderIdentity") or None
            if holder != self.holder and holder != self.identity:
                log.info("leader Lease %s held by %s", self._where(), holder or "nobody")
            self.holder = holder

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return self.clock() >= self._observed_at + duration

    def _won(self, lease: dict[str, Any], started: float) -> bool:
        spec = dict(lease.get("spec") or {})
        self._observed, self._observed_at = spec, self.clock()
        self.holder, self.renewed_at = self.identity, started
        self.transitions = int(spec.get("leaseTransitions") or 0)
        if not self.is_leader:
            self.is_leader = True
            log.info(
                "became leader: Lease %s, identity %s, transitions %d",
                self._where(),
                self.identity,
                self.transitions,
            )
        return True

    def _where(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    # --- loops ------------------------------------------------------------------------------
    async def acquire(self) -> None:
        """Return once we hold the Lease; try every retry period (a little jitter, so
        candidates started together do not collide on every attempt)."""
        log.info("waiting for leader Lease %s as %s", self._where(), self.identity)
        while not await self._attempt():
            await self.sleep(self.config.retry_period * (1.0 + 0.2 * self.rng()))

    async def hold(self) -> None:
        """Renew every retry period; return when leadership is lost (no successful renewal
        for renew_deadline, or the Lease shows another holder). The caller must stop acting
        at once."""
        while True:
            await self.sleep(self.config.retry_period)
            ok = await self._attempt()
            if not self.is_leader or (not ok and self.lost()):
                self.is_leader = False
                return

    def lost(self) -> bool:
        """No successful renewal within the renew deadline."""
        at = self.renewed_at
        return at is None or self.clock() - at > self.config.renew_deadline

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the apiserver down, slow, or refusing: try again later
            log.warning("leader Lease %s: %s: %s", self._where(), type(e).__name__, e)
            return False

    async def release(self) -> bool:
        """Give the Lease up (only after acting has stopped): empty holder, 1 s duration, as
        client-go's ReleaseOnCancel does. False when it was not ours (any more)."""
        if not self.is_leader:
            return False
        self.is_leader = False
        c = self.config
        try:
            lease = await self.kube.get_lease(c.namespace, c.name, timeout=c.renew_deadline)
            spec = dict((lease or {}).get("spec") or {})
            if lease is None or spec.get("holderIdentity") != self.identity:
                return False
            now = micro_time(self.wall())
            lease["spec"] = {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": spec.get("leaseTransitions") or 0,
            }
            await self.kube.replace_lease(c.namespace, c.name, lease, timeout=c.renew_deadline)
        except Exception as e:  # it expires on its own a lease duration later
            log.warning("could not release leader Lease %s: %s", self._where(), e)
            return False
        log.info("released leader Lease %s", self._where())
        return True

    def report(self) -> dict[str, Any]:
        """For /health."""
        return {
            "lease": self._where(),
            "identity": self.identity,
            "holder": self.holder,
            "transitions": self.transitions,
        }


class Watchdog(threading.Thread):
    """Calls `on_lost` (which should end the process) as soon as the elector has gone
    renew_deadline without a successful renewal. A thread, not a task: if the event loop
    stalls, the renewal task stalls with it, but the controller's queued work would run
    the moment the loop resumes, before the renewal task noticed anything."""

    def __init__(self, elector: LeaderElector, on_lost: Callable[[], None], interval: float = 0.2):
        super().__init__(name="lark-leader-watchdog", daemon=True)
        self.elector, self.on_lost, self.interval = elector, on_lost, interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            if self.elector.lost():
                self.on_lost()
                return

    def stop(self) -> None:
        self._stopped.set()
