"""When to try an Open Platform call again, and after how long.

Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
Jitter") spreads the retries of many clients hitting the same failure over the whole window
instead of synchronising them. `RetryPolicy` decides per error kind: transient and unknown
failures back off, a short rate-limit reset is waited out, everything else is final.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lark_operator.openplatform.errors import ErrorKind, OpenPlatformError


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry):
    uniform in [0, min(cap, base * 2**attempt)). `rng` returns a float in [0, 1)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    # Cap the exponent: 2**attempt for a large attempt would overflow a float.
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    return max(0.0, ceiling * rng())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int  # HTTP attempts per logical call, the first included
    base: float
    cap: float
    max_ratelimit_wait: float  # a longer x-ogw-ratelimit-reset ends the call
    rng: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def delay(self, err: OpenPlatformError, attempt: int) -> float | None:
        """Seconds to sleep before the attempt after `attempt` (0-based); None when the
        error is final."""
        if attempt + 1 >= self.max_attempts:
            return None
        if err.kind is ErrorKind.RATE_LIMITED:
            if err.retry_after is not None:
                # The upstream gate at the top of the next attempt does the waiting.
                return 0.0 if err.retry_after <= self.max_ratelimit_wait else None
            return self._backoff(attempt)
        if err.kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.base, cap=self.cap, rng=self.rng)
