"""One heap of due times for every LarkApp, and at most one reconcile per LarkApp in flight.

5,000 LarkApps cost 5,000 heap entries, not 5,000 sleeping tasks. A key whose time has come
waits for one of `max_concurrency` slots, earliest deadline first: a LarkApp just created
(deadline: now + a few seconds) goes ahead of a refresh whose token still has minutes left,
and a refresh about to lapse goes ahead of both. Work an event set off (a creation, a
changed spec or Secret: `now()`) waits in a queue of its own and, while refreshes more
urgent than it wait too, takes every other slot: a refresh wave running late (every
deadline past) would otherwise hold a creation burst back until the whole wave is done, and
the burst can never hold back the wave for more than one run at a time. A key due while its
reconcile runs is marked dirty and queued again right after. The scheduler knows keys,
times and deadlines only, nothing of LarkApps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from lark_operator import metrics

Run = Callable[[Any], Awaitable[None]]
# How soon work that an event set off (a creation, a changed spec or Secret) should start.
URGENT = 2.0


@dataclass(slots=True)
class _Entry:
    seq: int = -1  # the plan that counts (older heap entries are skipped: lazy deletion)
    when: float = 0.0  # of that plan
    deadline: float = 0.0  # by when it should start: orders the ready queue
    done_seq: int = -1  # the last plan started (a plan runs once)
    event: bool = False  # that plan was set off by an event (now()): the event queue
    running: bool = False
    rerun: float | None = None  # deadline of a run asked for while one was in flight
    rerun_event: bool = False


class Scheduler:
    def __init__(
        self,
        run: Run,
        *,
        max_concurrency: int,
        clock: Callable[[], float] = time.time,
    ):
        self._run, self._clock = run, clock
        self._slots = max_concurrency
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[float, int, Hashable]] = []  # (when, seq, key)
        self._ready: list[tuple[float, int, Hashable]] = []  # (deadline, seq, key)
        self._events: list[tuple[float, int, Hashable]] = []  # the same, set off by events
        self._streak = False  # the last slot went to a deadline run while events waited
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[Hashable] = set()
        self._loop_task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="lark-scheduler")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        now = self._clock()
        oldest = [w for w, _, _ in self._heap[:1]]
        queued = self._ready[:1] + self._events[:1]
        oldest += [e.when for _, _, k in queued if (e := self._entries.get(k))]
        alive = self._loop_task is not None and not self._loop_task.done()
        return {
            "scheduler": "running" if alive else "stopped",
            "scheduled": len(self._heap),
            "inflight": len(self._running),
            "waiting": self.waiting(),
            "overdue_seconds": round(max([0.0, *(now - t for t in oldest)]), 3),
        }

    # --- scheduling -----------------------------------------------------------------------
    def at(
        self, key: Hashable, when: float, *, deadline: float | None = None, event: bool = False
    ) -> None:
        """Run `key` at `when`, replacing a plan for it that is not due yet; once due it
        waits for a slot in the order of `deadline` (default: `when`). A plan already due
        and not started is kept when it is sooner (an event is never lost to a later
        plan made meanwhile). `event`: set off by an event (the event queue)."""
        entry = self._entries.setdefault(key, _Entry())
        deadline = when if deadline is None else deadline
        if entry.seq != entry.done_seq and entry.when <= self._clock():
            when, deadline = min(when, entry.when), min(deadline, entry.deadline)
            event = event or entry.event
        entry.seq, entry.when, entry.deadline = next(self._seq), when, deadline
        entry.event = event
        heapq.heappush(self._heap, (when, entry.seq, key))
        self._wake.set()

    def now(self, key: Hashable, *, deadline: float | None = None) -> None:
        """Run `key` as soon as a slot is free: an event's work (deadline now + URGENT)
        unless a deadline is given."""
        now = self._clock()
        if deadline is None:
            self.at(key, now, deadline=now + URGENT, event=True)
        else:
            self.at(key, now, deadline=deadline)

    def forget(self, key: Hashable) -> None:
        """No more runs for `key` (one in flight finishes)."""
        self._entries.pop(key, None)

    def running(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.running

    def inflight(self) -> int:
        return len(self._running)

    def running_keys(self) -> frozenset[Hashable]:
        """The keys whose run is in flight (at most max_concurrency)."""
        return frozenset(self._running)

    def waiting(self) -> int:
        """Keys due and waiting for a slot (an upper bound: a plan replaced while queued
        is counted until its turn comes)."""
        return len(self._ready) + len(self._events)

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                _, seq, key = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or seq != entry.seq or seq == entry.done_seq:
                    continue  # superseded, forgotten or started
                queue = self._events if entry.event else self._ready
                heapq.heappush(queue, (entry.deadline, seq, key))
            self._dispatch(now)
            timeout = min(self._heap[0][0] - now, 5.0) if self._heap else 5.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass

    def _head(self, queue: list[tuple[float, int, Hashable]]) -> float | None:
        """The deadline first in `queue`, after dropping plans superseded, forgotten or
        started (lazy deletion); None when it is empty."""
        while queue:
            _, seq, key = queue[0]
            entry = self._entries.get(key)
            if entry is not None and seq == entry.seq and seq != entry.done_seq:
                return queue[0][0]
            heapq.heappop(queue)
        return None

    def _dispatch(self, now: float) -> None:
        """Fill free slots: earliest deadline first, but events wait behind at most one
        deadline run at a time."""
        while len(self._running) < self._slots:
            due, ev = self._head(self._ready), self._head(self._events)
            if due is None and ev is None:
                return
            if ev is not None and (due is None or ev <= due or self._streak):
                queue, self._streak = self._events, False
            else:
                queue, self._streak = self._ready, ev is not None
            deadline, seq, key = heapq.heappop(queue)
            entry = self._entries[key]
            entry.done_seq = seq
            if entry.running:  # due while its run is in flight: once more right after
                entry.rerun = min(deadline, entry.rerun if entry.rerun is not None else deadline)
                entry.rerun_event |= entry.event
                continue
            metrics.SCHEDULER_LAG.set(max(0.0, now - entry.when))
            entry.running = True
            self._running.add(key)
            task = asyncio.create_task(self._run_once(key, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_once(self, key: Hashable, entry: _Entry) -> None:
        try:
            await self._run(key)
        finally:
            entry.running = False
            self._running.discard(key)
            rerun, entry.rerun = entry.rerun, None
            event, entry.rerun_event = entry.rerun_event, False
            if rerun is not None and self._entries.get(key) is entry:
                self.at(key, self._clock(), deadline=rerun, event=event)
            self._wake.set()
