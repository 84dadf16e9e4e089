from __future__ import annotations

import asyncio

import pytest

from lark_operator.openplatform import ErrorKind, OpenPlatformError
from lark_operator.openplatform.ratelimit import TokenBucket, UpstreamBlocks
from tests.helpers.clock import Clock


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


# --- the platform's reset windows ----------------------------------------------------------

APP = ("https://open.example", "cli_a")


def blocks(clock: Clock, max_wait: float = 10.0) -> UpstreamBlocks:
    return UpstreamBlocks(max_wait=max_wait, clock=clock, sleep=clock.sleep)


async def test_a_short_window_is_waited_out_and_then_forgotten() -> None:
    clock = Clock()
    b = blocks(clock)
    b.block(APP, 3)
    assert b.blocked() == 1
    await b.gate(APP, "/x")
    assert clock.slept == [3.0]
    assert b.blocked() == 0
    await b.gate(APP, "/x")  # no second wait
    assert clock.slept == [3.0]


async def test_a_long_window_fails_fast_without_waiting() -> None:
    clock = Clock()
    b = blocks(clock)
    b.block(APP, 60)
    clock.now += 20
    with pytest.raises(OpenPlatformError) as exc:
        await b.gate(APP, "/x")
    err = exc.value
    assert (err.kind, err.reason, err.endpoint) == (ErrorKind.RATE_LIMITED, "RateLimited", "/x")
    assert err.retry_after == pytest.approx(40.0)
    assert clock.slept == []


async def test_a_shorter_answer_does_not_shorten_a_known_window_and_apps_are_apart() -> None:
    clock = Clock()
    b = blocks(clock, max_wait=100)
    b.block(APP, 30)
    b.block(APP, 5)
    await b.gate(("https://open.example", "cli_other"), "/x")  # another app: not blocked
    assert clock.slept == []
    await b.gate(APP, "/x")
    assert clock.slept == [30.0]
