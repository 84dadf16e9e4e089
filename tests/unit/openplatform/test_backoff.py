from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lark_operator.openplatform import (
    ErrorKind,
    OpenPlatformClient,
    OpenPlatformError,
    backoff_delay,
)
from lark_operator.openplatform.backoff import RetryPolicy


def test_ceiling_doubles_per_attempt() -> None:
    top = lambda: 0.999999  # noqa: E731
    assert backoff_delay(0, base=0.2, cap=100, rng=top) == pytest.approx(0.2, rel=1e-5)
    assert backoff_delay(1, base=0.2, cap=100, rng=top) == pytest.approx(0.4, rel=1e-5)
    assert backoff_delay(3, base=0.2, cap=100, rng=top) == pytest.approx(1.6, rel=1e-5)


def test_full_jitter_scales_the_whole_window() -> None:
    assert backoff_delay(2, base=1, cap=100, rng=lambda: 0.0) == 0.0
    assert backoff_delay(2, base=1, cap=100, rng=lambda: 0.5) == 2.0


def test_cap_bounds_the_delay() -> None:
    assert backoff_delay(10, base=1, cap=5, rng=lambda: 0.5) == 2.5


def test_huge_attempt_does_not_overflow() -> None:
    assert backoff_delay(10_000, base=0.2, cap=5, rng=lambda: 0.5) == 2.5


def test_negative_attempt_is_rejected() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1, base=1, cap=1)


@given(
    attempt=st.integers(0, 200),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 100),
    r=st.floats(0, 1, exclude_max=True),
)
def test_always_within_window(attempt: int, base: float, cap: float, r: float) -> None:
    d = backoff_delay(attempt, base=base, cap=cap, rng=lambda: r)
    assert 0 <= d <= min(cap, base * 2.0 ** min(attempt, 64))


# --- which errors are tried again -----------------------------------------------------------


def error(kind: ErrorKind, retry_after: float | None = None) -> OpenPlatformError:
    return OpenPlatformError(
        kind=kind, reason="X", retryable=True, endpoint="/x", retry_after=retry_after
    )


@pytest.mark.parametrize(
    ("err", "delay"),
    [
        (error(ErrorKind.TRANSIENT), 0.1),  # backoff: 0.2 * 2**0 * rng 0.5
        (error(ErrorKind.UNKNOWN), 0.1),
        (error(ErrorKind.RATE_LIMITED), 0.1),  # no reset header: back off
        (error(ErrorKind.RATE_LIMITED, retry_after=3), 0.0),  # the gate waits it out
        (error(ErrorKind.RATE_LIMITED, retry_after=11), None),  # too long: final
        (error(ErrorKind.CREDENTIALS), None),
        (error(ErrorKind.CONFIG), None),
        (error(ErrorKind.TOKEN_INVALID), None),
    ],
)
def test_retry_policy_per_error_kind(err: OpenPlatformError, delay: float | None) -> None:
    policy = RetryPolicy(3, base=0.2, cap=5, max_ratelimit_wait=10, rng=lambda: 0.5)
    assert policy.delay(err, 0) == (None if delay is None else pytest.approx(delay))
    assert policy.delay(err, 2) is None  # the last attempt is always final


def test_retry_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        OpenPlatformClient(max_attempts=0)
