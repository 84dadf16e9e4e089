"""Runs the capacity plan (capacity.py) once a second (every 5 s while there is nothing to
do) against the LarkApps the registry holds: measures, brings refreshes forward, and says
which LarkApps are at risk — on the metrics at once, and in their status (TokenReady reason
RefreshCapacityExceeded) a few at a time, because each such status write takes a little of
the capacity that is short."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator

from lark_operator import metrics
from lark_operator.reconcile.capacity import MARGIN, Due, Plan, Throughput, plan
from lark_operator.reconcile.registry import Registry
from lark_operator.reconcile.scheduler import Scheduler
from lark_operator.reconcile.state import Key
from lark_operator.tokens import policy

log = logging.getLogger("lark_operator.reconcile")

TICK = 1.0
# When a plan found nothing to do and nothing waits, the next comes this much later: a wave
# is seen minutes ahead (the re-issue window), and a quiet replica spends its CPU elsewhere.
IDLE_TICK = 5.0
# The plan goes over every LarkApp: at most this share of the time is spent on it (at
# 10,000 LarkApps on a busy machine a plan can take a tenth of a second; it then runs
# every few seconds, bringing forward for that long at a time).
BUDGET = 0.05
# Ticks in a row a LarkApp must be projected to lapse before its status says so (one
# noisy measurement does not flag a thousand LarkApps).
CONFIRM = 3
# Share of the capacity spent on writing that into status.
FLAG_SHARE = 0.05


class RefreshPlanner:
    def __init__(
        self,
        registry: Registry,
        scheduler: Scheduler,
        *,
        pinned: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ):
        self.registry, self.scheduler = registry, scheduler
        self.clock, self.rng = clock, rng
        self.throughput = Throughput(pinned=pinned)
        self._suspect: dict[Key, int] = {}  # projected to lapse, ticks in a row
        self._task: asyncio.Task[None] | None = None
        self._last: float | None = None
        self._waiting = 0
        self._interval = TICK
        self._leads: dict[float | None, float] = {}  # token lifetime -> earliest lead
        metrics.REFRESH_CAPACITY.set(self.throughput.rate)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lark-refresh-planner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def done(self, refreshed: bool) -> None:
        """A reconcile completed (`refreshed`: it asked for a token)."""
        self.throughput.done(refreshed)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            started, result = time.process_time(), None
            try:
                result = self.tick()
            except Exception:  # a bad plan must not stop planning
                log.exception("refresh plan failed")
            self._interval = self.next_interval(result, time.process_time() - started)

    def next_interval(self, result: Plan[Key] | None, cpu: float) -> float:
        """Until the next plan: TICK, IDLE_TICK after a plan with nothing to do while
        nothing waited, and longer when a plan costs more than BUDGET of the time."""
        quiet = result is not None and not (result.start_now or result.at_risk or self._waiting)
        return max(IDLE_TICK if quiet else TICK, cpu / BUDGET)

    def tick(self) -> Plan[Key]:
        now = self.clock()
        waiting = self.scheduler.waiting()
        seconds = now - self._last if self._last is not None else 0.0
        rate = self.throughput.tick(seconds, saturated=self._waiting > 0 and waiting > 0)
        self._last, self._waiting = now, waiting
        busy = waiting + self.scheduler.inflight()
        result = plan(
            self._upcoming(),
            now=now,
            capacity=rate,
            busy=busy,
            tick=self._interval,
            measured=self.throughput.measured,
        )
        for key in result.start_now:
            self._bring_forward(key, now)
        self._flag(result, now, rate)
        metrics.REFRESH_CAPACITY.set(round(rate, 2))
        metrics.REFRESH_SHORTFALL.set(result.shortfall)
        return result

    def _upcoming(self) -> Iterator[Due[Key]]:
        running, leads = self.scheduler.running_keys(), self._leads
        for key, app in self.registry.apps.items():
            t, spec = app.token, app.spec
            held, due = t.held, t.next_refresh_at
            if held is None or due is None or spec is None or spec.suspend:
                continue  # nothing to renew
            if spec.is_store:
                continue  # each tenant renews in its own window (storeapp.py): not movable
            if spec.app_ref is not None:
                continue  # takes its ClusterLarkApp's token when that lands (follow.py)
            lead = leads.get(t.lifetime)
            if lead is None:
                lead = leads[t.lifetime] = policy.earliest_lead(t.lifetime)
            expires = held.earliest_expiry
            # A retry follows its own schedule (never brought forward: not before `due`),
            # but it needs capacity all the same: an overloaded apiserver that fails
            # writes must not take the LarkApps it fails out of the projected shortfall.
            earliest = due if t.failures else expires - lead
            yield Due(key, due, earliest, expires, key in running)

    def _bring_forward(self, key: Key, now: float) -> None:
        app = self.registry.get(key)
        if app is None or app.token.held is None or app.spec is None:
            return
        app.token.next_refresh_at = now
        deadline = app.token.held.earliest_expiry - MARGIN
        self.scheduler.at(key, now + self.rng() * self._interval, deadline=deadline)
        metrics.REFRESHES_BROUGHT_FORWARD.inc()

    def _flag(self, result: Plan[Key], now: float, rate: float) -> None:
        """Status for the LarkApps projected to lapse CONFIRM ticks in a row, at most
        FLAG_SHARE of the capacity per tick, earliest expiry first."""
        self._suspect = {k: self._suspect.get(k, 0) + 1 for k in result.at_risk}
        budget = max(1, int(FLAG_SHARE * rate * self._interval))
        for key, start in result.at_risk.items():
            if budget <= 0:
                break
            app = self.registry.get(key)
            if app is None or app.token.at_risk is not None or self._suspect[key] < CONFIRM:
                continue
            if app.token.failures:
                continue  # its status says why it is failing, which comes first
            app.token.at_risk = start
            budget -= 1
            held = app.token.held
            deadline = held.earliest_expiry - MARGIN if held is not None else now
            self.scheduler.at(key, now, deadline=deadline)
