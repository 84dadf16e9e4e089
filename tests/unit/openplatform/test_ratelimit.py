from __future__ import annotations

import asyncio

import pytest

from lark_operator.openplatform.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_burst_passes_then_callers_wait_one_interval_each() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    waits = [await bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == pytest.approx([0.1, 0.1])
    assert clock.slept == pytest.approx([0.1, 0.1])


async def test_concurrent_callers_queue_up_without_overtaking() -> None:
    clock = Clock()
    sleeps: list[float] = []

    async def record(seconds: float) -> None:  # does not move the clock: all reserve at once
        sleeps.append(seconds)

    bucket = TokenBucket(2, 1, clock=clock, sleep=record)
    await asyncio.gather(*(bucket.acquire() for _ in range(4)))
    assert sorted(sleeps) == pytest.approx([0.5, 1.0, 1.5])


async def test_refills_with_time_up_to_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 2, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    await bucket.acquire()
    clock.now += 100  # long idle: refills to burst (2), not 100
    assert [await bucket.acquire() for _ in range(3)] == pytest.approx([0, 0, 1.0])


async def test_clock_going_backwards_does_not_drain() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 1, clock=clock, sleep=clock.sleep)
    clock.now -= 50
    assert await bucket.acquire() == 0


async def test_cancelled_waiter_gives_its_reservation_back() -> None:
    clock = Clock()
    gate = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        await gate.wait()

    bucket = TokenBucket(1, 1, clock=clock, sleep=blocking_sleep)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Without the refund the next caller would wait 2 s instead of 1 s.
    assert bucket.reserve() == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
