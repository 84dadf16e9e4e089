"""The one fake clock of the tests: code under test takes `clock=` (a callable returning
seconds) and, where it waits, `sleep=`; hand it this and time moves only when the test says
so, or by exactly what the code slept. Code that waits on the event loop itself (timeouts,
`asyncio.wait_for`) runs on the clock inside `loop_time(clock)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


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


@contextlib.contextmanager
def loop_time(clock: Clock) -> Iterator[None]:
    """Run the running event loop on `clock`: its timers read the clock, and when nothing is
    ready the loop moves the clock to the next timer instead of waiting for it. Timing then
    no longer depends on how loaded the machine is: `await asyncio.sleep(0.75)` is exactly
    0.75 s of the code's time, and every timer due in it fires. For code without I/O of its
    own (the loop still polls I/O, but never waits for it while a timer is pending)."""
    loop: Any = asyncio.get_running_loop()
    selector = loop._selector  # asyncio's own loop; what _run_once waits on
    real_select = selector.select

    def select(timeout: float | None = None) -> Any:
        if timeout:  # nothing ready before the next timer: jump to it
            clock.advance(timeout)
            return real_select(0)
        return real_select(timeout)

    resolution = loop._clock_resolution
    # A timer due now runs only if it is due before now + resolution: at the clock's epoch
    # times the monotonic clock's 1 ns is below a float's step, so use a step that counts.
    loop.time, selector.select, loop._clock_resolution = clock, select, 1e-6
    try:
        yield
    finally:
        del loop.time, selector.select
        loop._clock_resolution = resolution
