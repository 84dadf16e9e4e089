"""Answer parsing: one HTTP answer of the Open Platform into a result or an OpenPlatformError.

Pure (the time is passed in, nothing is read from the network here) so that every shape of
answer can be tried without a server. The rules it enforces:
- the body's `code` decides, whatever the HTTP status: the platform often answers 200 with
  an error, and a gateway's 5xx may carry a real code;
- a success carries a token of printable ASCII and an `expire` of at most a day; anything
  else is a malformed answer (retried as transient), never a Token;
- the platform's `msg` reaches the error only redacted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar

from lark_operator.openplatform.errors import OpenPlatformError
from lark_operator.openplatform.redact import redact
from lark_operator.openplatform.token import TOKEN_FIELDS, Token

T = TypeVar("T")
# How a successful body (code 0) becomes the call's result; `now` is the answer's time.
Parser = Callable[[dict[str, Any], float], T]

# A token is printable ASCII without spaces (it goes into an Authorization header) of sane
# length; a token lives at most 2 hours (shared/lark-open-api.md), so an `expire` beyond a
# day is not a lifetime but a broken answer (and would overflow date arithmetic later).
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")
MAX_EXPIRE = 86_400
MAX_RATELIMIT_RESET = 3600.0  # an x-ogw-ratelimit-reset beyond an hour is taken as an hour
_CODE_RANGE = range(-(2**31), 2**31)  # the platform's codes are 32-bit integers


class Malformed(Exception):
    """A code-0 answer without the fields it must carry."""


def parse_reset(value: str | None) -> float | None:
    """Seconds from an x-ogw-ratelimit-reset header; None when absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RATELIMIT_RESET)


def parse_token(token_type: str, body: dict[str, Any], now: float) -> Token:
    name = TOKEN_FIELDS[token_type]
    value = body.get(name)
    expire = body.get("expire")
    if not isinstance(value, str) or not value:
        raise Malformed(f"answer has code 0 but no string '{name}'")
    if not _TOKEN_RE.fullmatch(value):
        raise Malformed(
            f"answer has code 0 but '{name}' is not 1-4096 printable ASCII characters "
            f"without spaces ({len(value)} characters)"
        )
    if not _is_int(expire) or expire <= 0:
        raise Malformed("answer has code 0 but no positive whole number of seconds 'expire'")
    if expire > MAX_EXPIRE:
        raise Malformed(
            f"answer has code 0 but 'expire' {expire if expire < 10**12 else 'huge'} is more "
            f"than a day (a token lives at most 2 hours)"
        )
    return Token(value=value, token_type=token_type, expires_at=now + expire, obtained_at=now)


def parse_bot(body: dict[str, Any], now: float) -> dict[str, Any]:
    """The `bot` object of a /bot/v3/info answer."""
    bot = body.get("bot")
    if not isinstance(bot, dict):
        raise Malformed("answer has code 0 but no object 'bot'")
    return bot


def interpret(
    path: str,
    status: int,
    content_type: str,
    retry_after: float | None,
    raw: bytes,
    now: float,
    secrets: tuple[str, ...],
    parse: Parser[T],
) -> T:
    """Turn one HTTP answer into a result or an OpenPlatformError. The body's `code` is
    authoritative whatever the HTTP status: the platform often answers 200 with an error.
    `secrets` are what was sent (and must not come back in the error)."""
    problem, body = _read_json(raw)
    if body is not None:
        code = body.get("code")
        if not _is_int(code):
            problem = "no integer 'code'"
        elif code not in _CODE_RANGE:
            problem = "'code' is not a 32-bit integer"
    if problem is not None or body is None:
        # An HTML error page from a gateway, a truncated body, JSON of the wrong shape.
        what = content_type and redact(content_type, *secrets, limit=60)
        if 300 <= status < 400:
            problem = f"a redirect (not followed: the API never redirects), {problem}"
        raise OpenPlatformError.from_answer(
            endpoint=path,
            code=None,
            http_status=status,
            msg=f"unreadable answer: {problem} ({what or 'no content type'}, {len(raw)} bytes)",
            retry_after=retry_after,
            label="malformed" if 200 <= status < 300 else f"http_{status}",
        )
    if code != 0:
        answered = tuple(
            v for v in (body.get(f) for f in TOKEN_FIELDS.values()) if isinstance(v, str)
        )
        msg = body.get("msg", "")
        raise OpenPlatformError.from_answer(
            endpoint=path,
            code=code,
            http_status=status,
            msg=redact(msg, *secrets, *answered) if isinstance(msg, str) else "(msg not text)",
            retry_after=retry_after,
        )
    if not 200 <= status < 300:
        raise OpenPlatformError.from_answer(
            endpoint=path,
            code=None,
            http_status=status,
            msg="code 0 with an HTTP error status",
            label=f"http_{status}",
        )
    try:
        return parse(body, now)
    except Malformed as exc:
        raise OpenPlatformError.from_answer(
            endpoint=path, code=None, http_status=status, msg=str(exc), label="malformed"
        ) from None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_json(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, object): the body as a JSON object, or what is wrong with it. JSON on the
    wire is UTF-8 (RFC 8259); a byte order mark is tolerated."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8", None
    try:
        body = json.loads(text)
    except RecursionError:
        return "JSON nested too deeply", None
    except ValueError:
        return "not JSON" if raw.strip() else "empty body", None
    if not isinstance(body, dict):
        return f"JSON {type(body).__name__}, not an object", None
    return None, body
