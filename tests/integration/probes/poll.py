"""Waiting inside the probe tests' own event loop: for a probe to report a reason (findings
that take a moment to show), or for any condition, up to a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from lark_operator.probes import result as r


async def until(
    probe: Callable[[], Awaitable[r.ProbeResult]], reason: str, seconds: float = 5
) -> r.ProbeResult:
    """Probe every 0.2 s until the result's reason is `reason` or `seconds` have passed;
    return the last result (the caller asserts on it)."""
    deadline = time.monotonic() + seconds
    while True:
        res = await probe()
        if res.reason == reason or time.monotonic() > deadline:
            return res
        await asyncio.sleep(0.2)


async def eventually(check: Callable[[], object], seconds: float, what: str) -> None:
    """Return as soon as `check()` is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)
