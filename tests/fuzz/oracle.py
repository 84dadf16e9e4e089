"""What the client must do with a `Case`, and the properties every call must satisfy.

The contract (independent of the client's code, which is what is under test):
- a token is reported only for a complete 2xx answer whose body is at most 1 MiB of UTF-8
  JSON: an object with integer `code` 0, a token string of 1..4096 visible ASCII
  characters and an integer `expire` between 1 and 86400 seconds;
- anything else ends in OpenPlatformError, never another exception, never a hang;
- the error names the endpoint, says what was wrong in at most a few hundred printable
  characters, and carries no app secret and no token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from lark_operator.openplatform import TOKEN_PATHS, ErrorKind, OpenPlatformClient, OpenPlatformError
from lark_operator.openplatform.token import TOKEN_FIELDS
from lark_operator.vocabulary.hints import hint_for
from tests.fuzz.upstream import Case, ScriptedUpstream

NOW = 1_700_000_000.0
MAX_BODY = 1 << 20
MAX_EXPIRE = 86_400
MAX_MESSAGE = 700
TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
FRAMING_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection"}
# The client's own timeouts in the fuzz runs, and the bound on a whole call.
CONNECT_TIMEOUT, READ_TIMEOUT = 0.5, 0.5
CALL_BOUND = 5.0


def well_formed(body: bytes, token_type: str) -> tuple[str, int] | None:
    """(token, expire) when `body` is a valid success answer, else None."""
    if len(body) > MAX_BODY:
        return None
    try:
        obj = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    code, token, expire = obj.get("code"), obj.get(TOKEN_FIELDS[token_type]), obj.get("expire")
    if type(code) is not int or code != 0:
        return None
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        return None
    if type(expire) is not int or not 1 <= expire <= MAX_EXPIRE:
        return None
    return token, expire


@dataclass
class Expect:
    verdict: str  # success | error | either
    token: str | None = None
    expire: int | None = None


def expect(case: Case) -> Expect:
    body = case.effective_body()
    if body is ...:
        return Expect("either")
    if body is None or not 200 <= case.status < 300 or case.status in (204, 304):
        return Expect("error")
    for name, value in case.headers:
        if not HEADER_NAME_RE.fullmatch(name) or name.lower() in FRAMING_HEADERS:
            return Expect("either")
        if not all(" " <= ch <= "~" for ch in value):
            return Expect("either")
    if case.status == 205:
        return Expect("either")
    parsed = well_formed(body, case.token_type)
    if parsed is None:
        return Expect("error")
    return Expect("success", *parsed)


@dataclass
class Outcome:
    token: Any = None
    error: OpenPlatformError | None = None
    requests: list[Any] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    elapsed: float = 0.0


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def call(
    upstream: ScriptedUpstream, case: Case, *, max_attempts: int = 1, base_url: str | None = None
) -> Outcome:
    """One get_token through the real client against `case`, bounded in time. Any exception
    but OpenPlatformError propagates (and fails the calling test).

    A call whose request never reached the upstream and that timed out is made again (up
    to twice): on a loaded machine the 0.5 s connect timeout can expire before the
    in-process server gets to accept; that says nothing about the client's handling of
    answers."""
    for _ in range(3):
        out = await _call_once(upstream, case, max_attempts, base_url)
        if out.requests or out.error is None or "timed out" not in str(out.error):
            break
    return out


async def _call_once(
    upstream: ScriptedUpstream, case: Case, max_attempts: int, base_url: str | None
) -> Outcome:
    upstream.reset(case)
    capture = _Capture()
    logger = logging.getLogger("lark_operator")
    logger.addHandler(capture)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    out = Outcome()
    started = time.monotonic()
    try:
        async with OpenPlatformClient(
            rate_per_second=1e6,
            burst=1_000_000,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_attempts=max_attempts,
            clock=lambda: NOW,
            sleep=_no_sleep,
            rng=lambda: 0.0,
        ) as client:
            try:
                async with asyncio.timeout(CALL_BOUND):
                    out.token = await client.get_token(
                        base_url or upstream.url, case.app_id, case.secret, case.token_type
                    )
            except OpenPlatformError as e:
                out.error = e
            except TimeoutError:
                raise AssertionError(f"get_token hung for more than {CALL_BOUND}s") from None
    finally:
        out.elapsed = time.monotonic() - started
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    await upstream.settle()
    out.requests = list(upstream.requests)
    out.logs = capture.lines
    return out


def secrets_of(case: Case) -> list[str]:
    """Strings that must never show up in an error or a log line: the app secret (also as
    JSON escapes it) and any token the answer carried."""
    out = {case.secret, json.dumps(case.secret)[1:-1]}
    try:
        obj = json.loads(case.body)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        for name in TOKEN_FIELDS.values():
            value = obj.get(name)
            if isinstance(value, str) and len(value) >= 8:
                out.add(value)
    return [s for s in out if len(s) >= 8]


def check(case: Case, out: Outcome, *, max_attempts: int = 1) -> None:
    """Every property of one call."""
    path = TOKEN_PATHS[case.token_type]
    assert out.elapsed < CALL_BOUND
    assert (out.token is None) != (out.error is None)
    # No redirect followed, no request anywhere else, no more attempts than allowed.
    assert 1 <= len(out.requests) <= max_attempts, [r.path for r in out.requests]
    for r in out.requests:
        assert (r.method, r.path) == ("POST", path), (r.method, r.path)
    want = expect(case)
    hidden = secrets_of(case)
    if out.token is not None:
        assert want.verdict != "error", f"success reported for a bad answer: {out.token!r}"
        tok = out.token
        assert TOKEN_RE.fullmatch(tok.value), "token is not a clean string"
        expire = tok.expires_at - NOW
        assert expire == int(expire) and 1 <= expire <= MAX_EXPIRE, expire
        if want.verdict == "success":
            assert (tok.value, expire) == (want.token, want.expire)
        hidden = [s for s in hidden if s != tok.value] + [tok.value]
    else:
        err = out.error
        assert err is not None
        if want.verdict == "success" and not (case.delay and "timed out" in str(err)):
            raise AssertionError(f"a valid answer was refused: {err}")
        text = str(err)
        assert path in text, text
        assert len(text) <= MAX_MESSAGE, f"{len(text)} characters"
        assert text.isprintable(), repr(text)
        assert isinstance(err.kind, ErrorKind) and err.reason and hint_for(err.reason)
        assert err.retry_after is None or 0 <= err.retry_after <= 3600, err.retry_after
        label = err.code_label
        assert len(label) <= 32 and label.isprintable(), label
        for s in hidden:
            assert s not in text, "a secret or token is in the error message"
    for line in out.logs:
        for s in hidden:
            assert s not in line, f"a secret or token is in a log line: {line[:200]!r}"
