"""classify() against every code of shared/lark-open-api.md, written out here on purpose
(not derived from errors.CODES) so that a change to the table fails a test."""

from __future__ import annotations

import pytest

from lark_operator.openplatform import ErrorKind, OpenPlatformError, classify
from lark_operator.vocabulary.hints import HINTS, hint_for
from lark_operator.vocabulary.reasons import Reason as R

K = ErrorKind

# code -> (kind, reason, retryable), one row per row of the facts table (+ 99991405).
FACTS = {
    10003: (K.CREDENTIALS, "InvalidCredentials", False),
    10012: (K.CONFIG, "InvalidCredentials", False),
    10013: (K.CREDENTIALS, "InvalidCredentials", True),
    10014: (K.CREDENTIALS, "InvalidCredentials", False),
    10015: (K.CREDENTIALS, "InvalidCredentials", False),
    99991400: (K.RATE_LIMITED, "RateLimited", True),
    99991401: (K.CONFIG, "IPDenied", False),
    99991403: (K.CONFIG, "QuotaExceeded", False),
    99991405: (K.RATE_LIMITED, "RateLimited", True),
    99991543: (K.CREDENTIALS, "InvalidCredentials", False),
    99991661: (K.CONFIG, "UnknownError", False),
    99991662: (K.CONFIG, "AppDisabled", False),
    99991663: (K.TOKEN_INVALID, "Expired", True),
    99991664: (K.TOKEN_INVALID, "Expired", True),
    99991665: (K.TOKEN_INVALID, "Expired", True),
    99991672: (K.CONFIG, "ScopeMissing", False),
    99991673: (K.CONFIG, "AppDisabled", False),
    1500: (K.TRANSIENT, "UpstreamUnavailable", True),
    5000: (K.TRANSIENT, "UpstreamUnavailable", True),
    10101: (K.TRANSIENT, "UpstreamUnavailable", True),
}


@pytest.mark.parametrize("code", sorted(FACTS))
def test_every_code_of_the_facts_table(code: int) -> None:
    assert tuple(classify(code, 200)) == FACTS[code]


@pytest.mark.parametrize("code", sorted(FACTS))
def test_code_wins_over_http_status(code: int) -> None:
    # The body's code is authoritative whatever the HTTP status.
    assert tuple(classify(code, 400)) == FACTS[code]
    assert tuple(classify(code, 429)) == FACTS[code]


def test_99991400_is_a_rate_limit_not_bad_credentials() -> None:
    # The old operations guides say "invalid credentials"; the official table wins.
    assert classify(99991400, 429).reason == "RateLimited"
    assert classify(99991401, 200).reason == "IPDenied"


@pytest.mark.parametrize("code", [42, 10016, 99999999, -1])
def test_unknown_code_is_retryable_unknown(code: int) -> None:
    assert tuple(classify(code, 200)) == (K.UNKNOWN, "UnknownError", True)


def test_unknown_code_with_http_429_is_a_rate_limit() -> None:
    assert classify(12345, 429).kind is K.RATE_LIMITED


@pytest.mark.parametrize("status", [None, 200, 404, 500, 502, 503, 504])
def test_no_code_is_transient(status: int | None) -> None:
    assert tuple(classify(None, status)) == (K.TRANSIENT, "UpstreamUnavailable", True)


def test_no_code_http_429_is_rate_limited() -> None:
    assert classify(None, 429).kind is K.RATE_LIMITED


@pytest.mark.parametrize("code", sorted(FACTS))
def test_every_reason_has_a_hint(code: int) -> None:
    assert FACTS[code][1] in HINTS


def test_error_attributes_and_message() -> None:
    err = OpenPlatformError.from_answer(
        endpoint="/open-apis/auth/v3/tenant_access_token/internal",
        code=10014,
        http_status=200,
        msg="app secret invalid",
    )
    assert (err.kind, err.reason, err.retryable) == (K.CREDENTIALS, "InvalidCredentials", False)
    assert hint_for(err.reason) == HINTS[R.INVALID_CREDENTIALS]
    assert "10014" in str(err) and "app secret invalid" in str(err)
    assert err.endpoint in str(err)
    assert err.code_label == "10014"
    assert err.retry_after is None


def test_rate_limit_error_carries_retry_after() -> None:
    err = OpenPlatformError.from_answer(
        endpoint="/x", code=99991400, http_status=429, msg="limit", retry_after=7.0
    )
    assert err.retry_after == 7.0 and "retry after 7s" in str(err)
    assert hint_for(err.reason) == HINTS[R.RATE_LIMITED]


@pytest.mark.parametrize(
    ("code", "status", "label", "expected"),
    [
        (None, 503, None, "http_503"),
        (None, None, None, "network"),
        (None, 200, "malformed", "malformed"),
        (5000, 500, None, "5000"),
    ],
)
def test_code_label(code: int | None, status: int | None, label: str | None, expected: str) -> None:
    err = OpenPlatformError.from_answer(
        endpoint="/x", code=code, http_status=status, msg="", label=label
    )
    assert err.code_label == expected


def test_quota_exceeded_has_its_own_hint() -> None:
    err = OpenPlatformError.from_answer(endpoint="/x", code=99991403, http_status=200, msg="")
    assert err.reason == "QuotaExceeded" and hint_for(err.reason) == HINTS[R.QUOTA_EXCEEDED]
