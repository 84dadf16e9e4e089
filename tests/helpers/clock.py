"""The one fake clock of the tests: code under test takes `clock=` (a callable returning
seconds) and, where it waits, `sleep=`; hand it this and time moves only when the test says
so, or by exactly what the code slept."""

from __future__ import annotations

import asyncio


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock by it instead of waiting; still yield once, so
        other tasks run as they would around a real sleep."""
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
