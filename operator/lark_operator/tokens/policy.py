"""When to refresh and how long to wait after a failure: pure functions of time.

Kept apart from the controller so the rules that decide whether a token can lapse are
tested directly with numbers, not through a running operator.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from lark_operator.openplatform import ErrorKind, backoff_delay


def earliest_lead(lifetime: float | None = None) -> float:
    """The longest before expiry a refresh still gets a new token: 29m, inside the
    platform's 30-minute re-issue window (earlier, the platform hands back the same token),
    and at most 90% of the token's lifetime, so that a token shorter-lived than that (an
    odd platform, or a scaled emulator) is not refreshed in a hot loop."""
    lead = 29 * 60.0
    return min(lead, 0.9 * lifetime) if lifetime else lead


def max_lead(renew_before: float, jitter: float, lifetime: float | None = None) -> float:
    """The longest a refresh may come before expiry by its own schedule: renewBefore plus
    its full jitter, within `earliest_lead`."""
    return min(renew_before * (1.0 + jitter), earliest_lead(lifetime))


def next_refresh_at(
    expires_at: float,
    renew_before: float,
    jitter: float,
    rng: Callable[[], float] = random.random,
    lifetime: float | None = None,
) -> float:
    """Renew `renew_before` (plus up to `jitter` of it, at random) ahead of expiry, so that
    many apps do not renew in lockstep; within `max_lead`."""
    lead = min(renew_before * (1.0 + jitter * rng()), max_lead(renew_before, jitter, lifetime))
    return expires_at - lead


def retry_delay(
    *,
    kind: ErrorKind,
    failures: int,
    now: float,
    token_expires_at: float | None,
    retry_after: float | None,
    base: float,
    cap: float,
    credentials_cap: float,
    near_expiry_cap: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds until the next attempt after `failures` failures in a row (>= 1).

    - wrong credentials/config: grows 30s, 60s, ... to `credentials_cap` (no hot loop; a
      change to the app's Secret retries at once anyway);
    - rate limited: at least what x-ogw-ratelimit-reset asked for;
    - transient: exponential with full jitter, never more than `near_expiry_cap` apart
      (whether a token is held, has expired or was never issued: workloads need one as
      soon as the platform is back) and, while a token is valid, never past its expiry.
    """
    attempt = max(0, failures - 1)
    if kind in (ErrorKind.CREDENTIALS, ErrorKind.CONFIG):
        delay = min(credentials_cap, 30.0 * 2.0 ** min(attempt, 16))
        return delay * (0.9 + 0.2 * rng())
    delay = min(max(1.0, backoff_delay(attempt, base=base, cap=cap, rng=rng)), near_expiry_cap)
    if token_expires_at is not None and token_expires_at > now:
        delay = min(delay, max(1.0, token_expires_at - now))
    if kind is ErrorKind.RATE_LIMITED and retry_after:
        delay = max(delay, retry_after)  # asking sooner only earns another 429
    return delay
