"""One heap of due times for every LarkApp, and at most one reconcile per LarkApp in flight.

5,000 LarkApps cost 5,000 heap entries, not 5,000 sleeping tasks. A LarkApp due while its
reconcile runs is marked dirty and runs again right after; reconciles run under a
concurrency limit. The scheduler knows keys and times only, nothing of LarkApps.
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


@dataclass(slots=True)
class _Entry:
    seq: int = -1  # of the heap entry that counts (older ones are skipped: lazy deletion)
    running: bool = False
    dirty: bool = False


class Scheduler:
    def __init__(
        self,
        run: Run,
        *,
        max_concurrency: int,
        clock: Callable[[], float] = time.time,
    ):
        self._run, self._clock = run, clock
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
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
        lag = max(0.0, self._clock() - self._heap[0][0]) if self._heap else 0.0
        alive = self._loop_task is not None and not self._loop_task.done()
        return {
            "scheduler": "running" if alive else "stopped",
            "scheduled": len(self._heap),
            "inflight": sum(1 for e in self._entries.values() if e.running),
            "overdue_seconds": round(lag, 3),
        }

    # --- scheduling -----------------------------------------------------------------------
    def at(self, key: Hashable, when: float) -> None:
        """Run `key` at `when` (replacing any earlier plan for it)."""
        entry = self._entries.setdefault(key, _Entry())
        entry.seq = next(self._seq)
        heapq.heappush(self._heap, (when, entry.seq, key))
        self._wake.set()

    def now(self, key: Hashable) -> None:
        self.at(key, self._clock())

    def forget(self, key: Hashable) -> None:
        """No more runs for `key` (one in flight finishes)."""
        self._entries.pop(key, None)

    def running(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.running

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                due, seq, key = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or seq != entry.seq:
                    continue  # superseded or forgotten
                metrics.SCHEDULER_LAG.set(max(0.0, now - due))
                self._launch(key, entry)
            timeout = min(self._heap[0][0] - now, 5.0) if self._heap else 5.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass

    def _launch(self, key: Hashable, entry: _Entry) -> None:
        if entry.running:
            entry.dirty = True
            return
        entry.running = True
        task = asyncio.create_task(self._run_until_clean(key, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_until_clean(self, key: Hashable, entry: _Entry) -> None:
        try:
            while True:
                entry.dirty = False
                async with self._sem:
                    await self._run(key)
                if not entry.dirty or self._entries.get(key) is not entry:
                    break
        finally:
            entry.running = False
