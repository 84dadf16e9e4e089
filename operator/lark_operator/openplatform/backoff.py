"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
Jitter"): spreads retries of many clients hitting the same failure over the whole window
instead of synchronising them."""

from __future__ import annotations

import random
from collections.abc import Callable


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
