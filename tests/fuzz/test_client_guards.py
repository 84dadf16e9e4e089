"""Guards of the client that no answer can trigger: what it refuses to send."""

from __future__ import annotations

import asyncio

from lark_operator.openplatform import ErrorKind
from lark_operator.openplatform.client import MAX_SECRET_LENGTH
from tests.fuzz.oracle import call
from tests.fuzz.upstream import Case, ScriptedUpstream


def test_an_absurdly_long_secret_is_not_sent(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream
) -> None:
    secret = "Sk3t-" + "q" * (1 << 20)  # a 1 MiB "App Secret": a file in the wrong key
    out = loop.run_until_complete(call(upstream, Case(secret=secret)))
    assert out.requests == [], "the secret was sent"
    err = out.error
    assert err is not None and err.kind is ErrorKind.CREDENTIALS
    assert err.reason == "InvalidCredentials" and not err.retryable
    text = str(err)
    assert f"{len(secret)} characters long" in text and secret[:40] not in text
    assert len(text) < 300


def test_a_secret_at_the_limit_is_sent(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream
) -> None:
    secret = "S" * MAX_SECRET_LENGTH
    body = b'{"code":0,"tenant_access_token":"t-limit-ok","expire":7200}'
    out = loop.run_until_complete(call(upstream, Case(secret=secret, body=body)))
    assert out.token is not None and out.token.value == "t-limit-ok"
    assert len(out.requests) == 1 and secret.encode() in out.requests[0].body
