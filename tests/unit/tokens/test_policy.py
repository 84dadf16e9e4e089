"""Refresh timing and retry delays as numbers."""

from __future__ import annotations

import pytest

from lark_operator.openplatform import ErrorKind
from lark_operator.tokens.policy import next_refresh_at, retry_delay

KW = dict(base=5.0, cap=300.0, credentials_cap=600.0, near_expiry_cap=30.0)


def test_next_refresh_within_reissue_window() -> None:
    assert next_refresh_at(10_000, 600, 0.0, lambda: 0.5) == 9_400
    assert next_refresh_at(10_000, 600, 0.5, lambda: 1.0) == 9_100
    # clamped to 29 minutes even with the largest jitter
    assert next_refresh_at(10_000, 29 * 60, 0.5, lambda: 1.0) == 10_000 - 29 * 60


@pytest.mark.parametrize("failures", range(1, 20))
def test_transient_never_waits_past_expiry_or_cap(failures: int) -> None:
    d = retry_delay(
        kind=ErrorKind.TRANSIENT,
        failures=failures,
        now=0,
        token_expires_at=100,
        retry_after=None,
        rng=lambda: 0.99,
        **KW,
    )
    assert 1 <= d <= 30


def test_credentials_backoff_grows_to_ten_minutes() -> None:
    delays = [
        retry_delay(
            kind=ErrorKind.CREDENTIALS,
            failures=f,
            now=0,
            token_expires_at=None,
            retry_after=None,
            rng=lambda: 0.5,
            **KW,
        )
        for f in range(1, 10)
    ]
    assert delays[0] == 30 and delays == sorted(delays) and delays[-1] == 600


def test_rate_limit_respects_reset_even_near_expiry() -> None:
    d = retry_delay(
        kind=ErrorKind.RATE_LIMITED,
        failures=1,
        now=0,
        token_expires_at=100,
        retry_after=45,
        rng=lambda: 0.1,
        **KW,
    )
    assert d == 45


def test_short_lived_token_is_not_refreshed_in_a_loop() -> None:
    # renewBefore 10m but the platform gave a 150 s token: renew 10% into its life.
    assert next_refresh_at(10_000, 600, 0.1, lambda: 0.5, lifetime=150) == 10_000 - 135


@pytest.mark.parametrize("expires_at", [None, -1.0, -3600.0])
@pytest.mark.parametrize("failures", [1, 5, 12, 30])
def test_transient_retries_stay_30s_apart_once_the_token_is_gone(
    expires_at: float | None, failures: int
) -> None:
    """Expired (or never issued): workloads have no token, so the platform's return must be
    noticed within one short delay — the backoff does not grow to retry_cap (5 min)."""
    d = retry_delay(
        kind=ErrorKind.TRANSIENT,
        failures=failures,
        now=0,
        token_expires_at=expires_at,
        retry_after=None,
        rng=lambda: 0.99,
        **KW,
    )
    assert 1 <= d <= 30
