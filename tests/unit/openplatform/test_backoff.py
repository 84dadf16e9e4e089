from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lark_operator.openplatform import backoff_delay


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
