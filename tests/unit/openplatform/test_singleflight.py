from __future__ import annotations

import asyncio

import pytest

from lark_operator.openplatform.singleflight import SingleFlight


async def test_concurrent_callers_share_one_call() -> None:
    sf: SingleFlight[str, int] = SingleFlight()
    calls = 0
    joins = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    def joined() -> None:
        nonlocal joins
        joins += 1

    tasks = [asyncio.create_task(sf.do("k", work, on_join=joined)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [42] * 10
    assert (calls, joins) == (1, 9)
    assert not sf.in_flight("k")


async def test_failure_reaches_every_caller_and_is_not_kept() -> None:
    sf: SingleFlight[str, int] = SingleFlight()
    attempts = 0

    async def fail() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    results = await asyncio.gather(*(sf.do("k", fail) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert attempts == 1
    with pytest.raises(RuntimeError):
        await sf.do("k", fail)  # a new call, not a remembered failure
    assert attempts == 2


async def test_different_keys_do_not_share() -> None:
    sf: SingleFlight[str, str] = SingleFlight()

    async def echo(v: str) -> str:
        await asyncio.sleep(0)
        return v

    a, b = await asyncio.gather(sf.do("a", lambda: echo("a")), sf.do("b", lambda: echo("b")))
    assert (a, b) == ("a", "b")


async def test_cancelling_the_first_caller_does_not_cancel_the_others() -> None:
    sf: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def work() -> int:
        await release.wait()
        return 7

    first = asyncio.create_task(sf.do("k", work))
    await asyncio.sleep(0)
    second = asyncio.create_task(sf.do("k", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == 7
    with pytest.raises(asyncio.CancelledError):
        await first
