"""Waiting on a real system: `eventually` for what must happen (polls up to a deadline,
returns as soon as it holds), `always` for what must not (polls over a window, fails the
moment it stops holding). Neither sleeps a fixed time and then counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy; fail with the last value/exception."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = value
        except AssertionError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last={last!r}")


def always(
    check: Callable[[], object],
    seconds: float,
    interval: float = 0.2,
    what: str = "",
    until: Callable[[], object] | None = None,
) -> None:
    """A negative check over a window: call `check` for `seconds` (at least once) and fail
    the moment it returns something falsy (an AssertionError it raises fails at once too).
    With `until`, the window ends once `until()` is truthy instead (say, after five more
    probes, however long the machine takes), and `seconds` is the deadline for that."""
    started = time.monotonic()
    while True:
        value = check()
        elapsed = time.monotonic() - started
        if not value:
            raise AssertionError(f"{what or check} stopped holding after {elapsed:.1f}s: {value!r}")
        if until is not None and until():
            return
        if elapsed >= seconds:
            if until is None:
                return
            raise AssertionError(f"timed out after {seconds}s waiting for {until} ({what})")
        time.sleep(interval)
