"""Answer parsing, without a server: the body's `code` decides, a success must carry a
sane token and `expire`, everything else is an OpenPlatformError that names what was wrong
and carries no secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lark_operator.openplatform import ErrorKind, OpenPlatformError, Token
from lark_operator.openplatform.answer import interpret, parse_reset, parse_token

PATH = "/open-apis/auth/v3/tenant_access_token/internal"
NOW = 1_700_000_000.0
SECRET = "s3cret-value"


def answer(
    body: bytes | dict[str, Any],
    status: int = 200,
    content_type: str = "application/json",
    retry_after: float | None = None,
) -> Token:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return interpret(
        PATH,
        status,
        content_type,
        retry_after,
        raw,
        NOW,
        (SECRET,),
        lambda b, now: parse_token("tenant", b, now),
    )


def failure(*args: Any, **kw: Any) -> OpenPlatformError:
    with pytest.raises(OpenPlatformError) as exc:
        answer(*args, **kw)
    return exc.value


def test_a_success_becomes_a_token_expiring_after_expire() -> None:
    token = answer({"code": 0, "tenant_access_token": "t-abc", "expire": 300})
    assert (token.value, token.token_type) == ("t-abc", "tenant")
    assert (token.obtained_at, token.expires_at) == (NOW, NOW + 300)


def test_a_byte_order_mark_is_tolerated() -> None:
    raw = (
        b"\xef\xbb\xbf" + json.dumps({"code": 0, "tenant_access_token": "t", "expire": 1}).encode()
    )
    assert answer(raw).value == "t"


def test_an_error_code_on_http_200_is_the_error() -> None:
    err = failure({"code": 10003, "msg": "invalid param"}, retry_after=2.0)
    assert (err.kind, err.reason, err.code, err.http_status) == (
        ErrorKind.CREDENTIALS,
        "InvalidCredentials",
        10003,
        200,
    )
    assert err.msg == "invalid param" and err.retry_after == 2.0


def test_the_body_code_wins_over_the_http_status() -> None:
    err = failure({"code": 5000, "msg": "internal"}, status=500)
    assert (err.code, err.code_label, err.kind) == (5000, "5000", ErrorKind.TRANSIENT)


def test_code_zero_with_an_http_error_status_is_not_a_success() -> None:
    err = failure({"code": 0, "tenant_access_token": "t-abc", "expire": 300}, status=503)
    assert (err.code, err.code_label, err.kind) == (None, "http_503", ErrorKind.TRANSIENT)


@pytest.mark.parametrize(
    ("raw", "status", "problem", "label"),
    [
        (b"<html>Bad Gateway</html>", 502, "not JSON", "http_502"),
        (b"<html>oops</html>", 200, "not JSON", "malformed"),
        (b"", 200, "empty body", "malformed"),
        (b"\xff\xfe", 200, "not UTF-8", "malformed"),
        (b"[1, 2]", 200, "JSON list, not an object", "malformed"),
        (b'{"code": true}', 200, "no integer 'code'", "malformed"),
        (b'{"code": 4294967296}', 200, "'code' is not a 32-bit integer", "malformed"),
        (b"", 302, "a redirect (not followed", "http_302"),
    ],
)
def test_an_unreadable_answer_says_what_is_wrong(
    raw: bytes, status: int, problem: str, label: str
) -> None:
    err = failure(raw, status=status, content_type="text/html")
    assert problem in err.msg and "text/html" in err.msg
    assert (err.code, err.code_label, err.kind) == (None, label, ErrorKind.TRANSIENT)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"code": 0, "expire": 300}, "no string 'tenant_access_token'"),
        ({"code": 0, "tenant_access_token": "t a", "expire": 300}, "printable ASCII"),
        ({"code": 0, "tenant_access_token": "t", "expire": True}, "positive whole number"),
        ({"code": 0, "tenant_access_token": "t", "expire": 0}, "positive whole number"),
        ({"code": 0, "tenant_access_token": "t", "expire": 86_401}, "more than a day"),
        ({"code": 0, "tenant_access_token": "t", "expire": 10**30}, "'expire' huge"),
    ],
)
def test_a_success_without_a_sane_token_is_malformed(body: dict[str, Any], problem: str) -> None:
    err = failure(body)
    assert problem in err.msg
    assert (err.code_label, err.kind, err.retryable) == ("malformed", ErrorKind.TRANSIENT, True)


def test_an_error_msg_echoing_the_secret_or_a_token_is_redacted() -> None:
    body = {"code": 10014, "msg": f"bad {SECRET} for t-leak", "tenant_access_token": "t-leak"}
    err = failure(body)
    assert SECRET not in str(err) and "t-leak" not in str(err)
    assert err.msg == "bad *** for ***"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("1e9", 3600.0), (None, None), ("soon", None), ("-1", None)],
)
def test_ratelimit_reset_header(header: str | None, seconds: float | None) -> None:
    assert parse_reset(header) == seconds


def test_a_non_finite_ratelimit_reset_is_ignored() -> None:
    assert parse_reset("nan") is None and parse_reset("inf") is None
