"""One probe per shared dependency per interval, whatever the number of LarkApps.

Subscribers (LarkApps) name a dependency URL; subscriptions with the same dependency, URL,
management URL and thresholds share one *target*. A target is probed at the shortest
interval among its subscribers, with the shortest timeout, and every subscriber's
callback gets each result. One loop walks a heap of due times; every due probe runs as
its own task under its own timeout, so a hung server only ever holds its own target
(and one slot of the concurrency bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lark_operator.probes.result import PROBE_ERROR, ProbeResult, failure
from lark_operator.probes.target import ProbeTarget, run_target

log = logging.getLogger("lark_operator.probes.scheduler")

Callback = Callable[[Hashable, ProbeResult], Awaitable[None]]
# A prober runs one target; `state` persists between probes of the same target.
Prober = Callable[[ProbeTarget, dict[str, Any]], Awaitable[ProbeResult]]

# Secret references differ between LarkApps that share one server: not part of the key.
_SECRET_REFS = {"dsn_secret_ref", "url_secret_ref", "management_url_secret_ref"}


@dataclass(frozen=True)
class TargetKey:
    dependency: str
    fingerprint: str  # sha256 of url + management URL: the key itself holds no secret
    thresholds: str  # canonical JSON of the probe settings that change the diagnosis


def target_key(dependency: str, url: str, management_url: str | None, cfg: Any) -> TargetKey:
    digest = hashlib.sha256(f"{url}\0{management_url or ''}".encode()).hexdigest()
    return TargetKey(dependency, digest, _canonical(cfg))


def _canonical(cfg: Any) -> str:
    if cfg is None:
        return ""
    if isinstance(cfg, BaseModel):
        cfg = cfg.model_dump(mode="json", exclude=_SECRET_REFS)
    return json.dumps(cfg, sort_keys=True, default=str)


@dataclass(frozen=True)
class _Subscription:
    interval: float
    timeout: float
    callback: Callback


@dataclass(eq=False)
class _Target:
    key: TargetKey
    url: str = field(repr=False)
    management_url: str | None = field(repr=False)
    cfg: Any
    subs: dict[Hashable, _Subscription] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    next_due: float = 0.0
    last_start: float | None = None
    generation: int = 0  # bumped on every reschedule; stale heap entries are skipped
    task: asyncio.Task[ProbeResult] | None = None
    last_result: ProbeResult | None = None

    @property
    def interval(self) -> float:
        return min(s.interval for s in self.subs.values())

    @property
    def timeout(self) -> float:
        return min(s.timeout for s in self.subs.values())

    def probe_target(self) -> ProbeTarget:
        return ProbeTarget(
            self.key.dependency, self.url, self.cfg, self.management_url, self.timeout
        )


async def _default_prober(target: ProbeTarget, state: dict[str, Any]) -> ProbeResult:
    return await run_target(target, state)


class ProbeScheduler:
    def __init__(
        self,
        max_concurrency: int = 16,
        clock: Callable[[], float] = time.monotonic,
        probers: Mapping[str, Prober] | None = None,
    ) -> None:
        self._clock = clock
        self._sem = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._probers = dict(probers or {})
        self._targets: dict[TargetKey, _Target] = {}
        self._where: dict[tuple[Hashable, str], TargetKey] = {}  # (subscriber, dep) -> target
        self._heap: list[tuple[float, int, TargetKey, int]] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[Any]] = set()

    # --- subscriptions ---------------------------------------------------------------
    def subscribe(
        self,
        subscriber: Hashable,
        dependency: str,
        url: str,
        cfg: Any,
        interval: float,
        timeout: float,
        callback: Callback,
        management_url: str | None = None,
    ) -> TargetKey:
        """Add or update a subscription; the same arguments again change nothing."""
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        key = target_key(dependency, url, management_url, cfg)
        sub = _Subscription(interval, timeout, callback)
        old_key = self._where.get((subscriber, dependency))
        if old_key is not None and old_key != key:
            self._remove(subscriber, dependency)
        target = self._targets.get(key)
        if target is None:
            target = _Target(key, url, management_url, cfg, next_due=self._clock())
            self._targets[key] = target
        elif target.subs.get(subscriber) == sub:
            return key  # nothing changed
        target.subs[subscriber] = sub
        self._where[(subscriber, dependency)] = key
        if target.last_result is not None and old_key != key:
            self._deliver_later({subscriber: sub}, target.last_result)
        self._reschedule(target)
        return key

    def unsubscribe(self, subscriber: Hashable, dependency: str | None = None) -> None:
        """Remove one subscription, or all of a subscriber's when dependency is None."""
        deps = [d for (s, d) in self._where if s == subscriber]
        for dep in deps if dependency is None else [dependency]:
            self._remove(subscriber, dep)

    def _remove(self, subscriber: Hashable, dependency: str) -> None:
        key = self._where.pop((subscriber, dependency), None)
        target = self._targets.get(key) if key is not None else None
        if target is None:
            return
        target.subs.pop(subscriber, None)
        if not target.subs:
            del self._targets[target.key]  # a running probe finishes and is forgotten
        else:
            self._reschedule(target)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._loop(), name="probe-scheduler")

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = [t.task for t in self._targets.values() if t.task]
        if self._loop_task is not None:
            tasks.append(self._loop_task)
            self._loop_task = None
        tasks += list(self._deliveries)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return {
            "targets": len(self._targets),
            "subscribers": len({s for (s, _) in self._where}),
            "subscriptions": len(self._where),
            "running": sum(1 for t in self._targets.values() if t.task and not t.task.done()),
            "maxConcurrency": self._max_concurrency,
        }

    def last_result(self, subscriber: Hashable, dependency: str) -> ProbeResult | None:
        key = self._where.get((subscriber, dependency))
        target = self._targets.get(key) if key is not None else None
        return target.last_result if target is not None else None

    async def run_once(self) -> dict[TargetKey, ProbeResult]:
        """Probe every target now (joining probes already running) and deliver; for tests
        and one-shot use without start()."""
        targets = list(self._targets.values())
        for target in targets:
            if target.task is None:
                self._launch(target)
        results = await asyncio.gather(*(t.task for t in targets if t.task is not None))
        return {t.key: r for t, r in zip(targets, results, strict=True)}

    # --- the loop --------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                _, _, key, generation = heapq.heappop(self._heap)
                target = self._targets.get(key)
                if target is not None and target.generation == generation and not target.task:
                    self._launch(target)
            delay = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _reschedule(self, target: _Target) -> None:
        if target.last_start is not None:
            target.next_due = target.last_start + target.interval
        target.generation += 1
        self._seq += 1
        heapq.heappush(self._heap, (target.next_due, self._seq, target.key, target.generation))
        self._wake.set()

    def _launch(self, target: _Target) -> None:
        task = asyncio.create_task(self._probe(target), name=f"probe-{target.key.dependency}")
        target.task = task

    async def _probe(self, target: _Target) -> ProbeResult:
        try:
            async with self._sem:
                target.last_start = self._clock()
                result = await self._run(target)
            target.last_result = result
            if self._targets.get(target.key) is target:
                await self._deliver(dict(target.subs), result)
            return result
        finally:
            target.task = None
            if self._targets.get(target.key) is target:
                target.next_due = max(
                    (target.last_start or self._clock()) + target.interval, self._clock()
                )
                target.generation += 1
                self._seq += 1
                entry = (target.next_due, self._seq, target.key, target.generation)
                heapq.heappush(self._heap, entry)
                self._wake.set()

    async def _run(self, target: _Target) -> ProbeResult:
        prober = self._probers.get(target.key.dependency, _default_prober)
        try:
            return await prober(target.probe_target(), target.state)
        except Exception as exc:  # probes never raise; a broken fake must not kill the loop
            return failure(target.key.dependency, PROBE_ERROR, f"probe raised {type(exc).__name__}")

    @staticmethod
    async def _deliver(subs: Mapping[Hashable, _Subscription], result: ProbeResult) -> None:
        async def one(subscriber: Hashable, sub: _Subscription) -> None:
            try:
                await sub.callback(subscriber, result)
            except Exception:
                log.exception("probe callback of %r failed", subscriber)

        await asyncio.gather(*(one(s, sub) for s, sub in subs.items()))

    def _deliver_later(self, subs: Mapping[Hashable, _Subscription], result: ProbeResult) -> None:
        """Give a new subscriber the target's last result now instead of an interval later."""
        try:
            task = asyncio.get_running_loop().create_task(self._deliver(subs, result))
        except RuntimeError:
            return  # no loop yet: the first probe will deliver
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
