"""The reconcile scheduler: due work waits for a slot and is served earliest deadline
first (a creation before a refresh with slack, a refresh about to lapse before both), but
work set off by events takes every other slot while a late wave waits (neither starves);
a change that arrives while a key's run is in flight is never lost; one run per key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

from lark_operator.reconcile.scheduler import URGENT, Scheduler


class Runs:
    """A run function that holds its slot until released, recording the order."""

    def __init__(self) -> None:
        self.order: list[Hashable] = []
        self.gate = asyncio.Event()
        self.active: set[Hashable] = set()
        self.overlap = False

    async def __call__(self, key: Hashable) -> None:
        self.overlap |= key in self.active
        self.active.add(key)
        self.order.append(key)
        try:
            await self.gate.wait()
        finally:
            self.active.discard(key)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_earliest_deadline_first_creations_before_refreshes_with_slack() -> None:
    runs = Runs()
    sched = Scheduler(runs, max_concurrency=1)
    await sched.start()
    try:
        now = time.time()
        sched.now("blocker")
        await until(lambda: runs.order == ["blocker"])
        # All due now; the slot is taken. A refresh whose token has 30 s left, one with
        # 5 s left, and a LarkApp just created (due within URGENT seconds).
        sched.at("refresh-slack", now, deadline=now + 30)
        sched.at("refresh-urgent", now, deadline=now - 1)
        sched.now("created")
        await until(lambda: sched.waiting() == 3)
        runs.gate.set()
        await until(lambda: len(runs.order) == 4)
        assert runs.order == ["blocker", "refresh-urgent", "created", "refresh-slack"]
        assert URGENT < 30
    finally:
        await sched.stop()


async def test_a_change_during_a_run_runs_it_again_once() -> None:
    runs = Runs()
    sched = Scheduler(runs, max_concurrency=4)
    await sched.start()
    try:
        sched.now("a")
        await until(lambda: runs.order == ["a"])
        # While "a" runs: an event for it, then the run itself plans its next wake far
        # ahead (as a reconcile does last). The event must not be lost to that plan.
        sched.now("a")
        sched.at("a", time.time() + 3600)
        await asyncio.sleep(0.05)
        assert runs.order == ["a"] and not runs.overlap  # never two runs of one key
        runs.gate.set()
        await until(lambda: runs.order == ["a", "a"])
        await asyncio.sleep(0.1)
        assert runs.order == ["a", "a"]  # once more, not in a loop
        assert not runs.overlap
    finally:
        await sched.stop()


async def test_slots_bound_concurrency_and_forget_drops_a_waiting_key() -> None:
    runs = Runs()
    sched = Scheduler(runs, max_concurrency=2)
    await sched.start()
    try:
        for k in ("a", "b", "c", "d"):
            sched.now(k)
        await until(lambda: len(runs.order) == 2)
        await asyncio.sleep(0.05)
        assert len(runs.order) == 2 and sched.inflight() == 2
        sched.forget("d")
        runs.gate.set()
        await until(lambda: len(runs.order) == 3)
        await asyncio.sleep(0.1)
        assert sorted(map(str, runs.order)) == ["a", "b", "c"]
    finally:
        await sched.stop()


async def test_a_later_plan_does_not_postpone_one_already_due() -> None:
    runs = Runs()
    runs.gate.set()
    sched = Scheduler(runs, max_concurrency=1)
    sched.at("k", time.time() - 1)  # due, not started (the loop is not running yet)
    sched.at("k", time.time() + 3600)
    await sched.start()
    try:
        await until(lambda: runs.order == ["k"])
    finally:
        await sched.stop()


async def test_a_late_refresh_wave_and_a_creation_burst_share_the_slots() -> None:
    """Every refresh of a wave running late has a deadline already past, earlier than any
    creation's: served by deadline alone, the burst would wait for the whole wave. Events
    take every other slot instead, and the wave keeps the rest."""
    runs = Runs()
    sched = Scheduler(runs, max_concurrency=1)
    await sched.start()
    try:
        now = time.time()
        sched.now("blocker")
        await until(lambda: runs.order == ["blocker"])
        for i in range(6):
            sched.at(f"refresh-{i}", now - 30, deadline=now - 20 + i)  # all overdue
        for i in range(3):
            sched.now(f"created-{i}")
        await until(lambda: sched.waiting() == 9)
        runs.gate.set()
        await until(lambda: len(runs.order) == 10)
        assert runs.order[1:] == [
            "refresh-0",
            "created-0",
            "refresh-1",
            "created-1",
            "refresh-2",
            "created-2",
            "refresh-3",
            "refresh-4",
            "refresh-5",
        ]
    finally:
        await sched.stop()


async def test_an_event_during_a_run_stays_an_event() -> None:
    """A change that arrives while its key runs is queued again, right after, as an event:
    it does not fall behind an overdue wave for having come at the wrong moment."""
    runs = Runs()
    sched = Scheduler(runs, max_concurrency=2)
    await sched.start()
    try:
        now = time.time()
        sched.now("app")
        await until(lambda: runs.order == ["app"])
        sched.now("app")  # changed while its run is in flight (a slot is free: marked)
        await asyncio.sleep(0.05)
        sched.now("other")  # takes the free slot
        await until(lambda: runs.order == ["app", "other"])
        for i in range(3):
            sched.at(f"refresh-{i}", now - 30, deadline=now - 20 + i)
        await until(lambda: sched.waiting() == 3)
        runs.gate.set()
        await until(lambda: len(runs.order) == 6)
        assert runs.order.index("app", 1) < runs.order.index("refresh-2"), runs.order
    finally:
        await sched.stop()
