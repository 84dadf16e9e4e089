"""Async client of the Open Platform auth API.

What the official SDKs get wrong is what this client is for (shared/lark-open-api.md):
- one upstream call per (base URL, app, secret, token type) at a time (single-flight);
- a cache keyed by the secret's hash too, so a caller with a wrong secret never receives
  a token cached for the right one;
- expiry from the `expire` the platform returns, never an assumed 7200 s;
- every answer's `code` read whatever the HTTP status; x-ogw-ratelimit-reset honoured,
  also by later calls for the same app;
- transient failures retried with full-jitter backoff inside the call; a failure never
  replaces the last good token in the cache.
Secrets and token values never reach logs, metrics or exception messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

import aiohttp

from lark_operator import __version__, metrics
from lark_operator.openplatform.backoff import backoff_delay
from lark_operator.openplatform.errors import ErrorKind, OpenPlatformError
from lark_operator.openplatform.ratelimit import TokenBucket
from lark_operator.openplatform.singleflight import SingleFlight

log = logging.getLogger("lark_operator.openplatform")

TOKEN_PATHS = {
    "tenant": "/open-apis/auth/v3/tenant_access_token/internal",
    "app": "/open-apis/auth/v3/app_access_token/internal",
}
TOKEN_FIELDS = {"tenant": "tenant_access_token", "app": "app_access_token"}
BOT_INFO_PATH = "/open-apis/bot/v3/info"
DEFAULT_USER_AGENT = f"lark-operator/{__version__}"
_MAX_MSG = 300  # the platform's msg is echoed into errors and logs: keep it short
# An auth answer is a few hundred bytes; a gateway's error page a few kilobytes. Anything
# beyond this is not read (a hostile or broken upstream must not fill the operator's memory).
MAX_BODY_BYTES = 1 << 20
# A token is printable ASCII without spaces (it goes into an Authorization header) of sane
# length; a token lives at most 2 hours (shared/lark-open-api.md), so an `expire` beyond a
# day is not a lifetime but a broken answer (and would overflow date arithmetic later).
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")
MAX_EXPIRE = 86_400
MAX_RATELIMIT_RESET = 3600.0  # an x-ogw-ratelimit-reset beyond an hour is taken as an hour
_CODE_RANGE = range(-(2**31), 2**31)  # the platform's codes are 32-bit integers
# A Secret holding something else than an App Secret (32 characters) is refused before
# sending it anywhere.
MAX_SECRET_LENGTH = 1024

T = TypeVar("T")
CacheKey = tuple[str, str, str, str]  # base_url, app_id, sha256(app_secret), token_type


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    token_type: str  # "tenant" | "app"
    expires_at: float  # epoch seconds: obtained_at + the `expire` returned
    obtained_at: float

    def fingerprint(self) -> str:
        """Short hash that identifies a token in status and logs without revealing it."""
        return "sha256:" + hashlib.sha256(self.value.encode()).hexdigest()[:12]

    def remaining(self, now: float) -> float:
        return self.expires_at - now

    def __repr__(self) -> str:
        return (
            f"Token(token_type={self.token_type!r}, fingerprint={self.fingerprint()!r}, "
            f"expires_at={self.expires_at!r}, obtained_at={self.obtained_at!r})"
        )

    __str__ = __repr__


class _Malformed(Exception):
    """A code-0 answer without the fields it must carry."""


class _TooLarge(Exception):
    def __init__(self, status: int, declared: str):
        super().__init__(status, declared)
        self.status, self.declared = status, declared


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _variants(secrets: tuple[str, ...]) -> list[str]:
    """Each secret as it may come back: verbatim, JSON-escaped (an echoed request body)
    and with non-printable characters replaced (as _clean shows text)."""
    out: set[str] = set()
    for s in secrets:
        if s:
            out.update({s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]})
            out.add(_printable(s))
    return sorted(out, key=len, reverse=True)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else (" " if ch in "\t\n\r" else "?") for ch in text)


def _redact(text: str, *secrets: str, limit: int = _MAX_MSG) -> str:
    """Text from the other side (the platform's msg, a header, an exception) made fit for
    an error message, a log line and status: secrets replaced, one printable line, short."""
    text = _printable(text)
    variants = _variants(secrets)
    for s in variants:
        text = text.replace(s, "***")
    if any(s in text for s in variants):  # a replacement made up a new occurrence
        return "(withheld: it contained a secret)"
    return text if len(text) <= limit else text[:limit] + "..."


def _describe_failure(exc: BaseException, timeout: float | None, *secrets: str) -> str:
    """What went wrong on the wire, without echoing what the upstream sent (aiohttp's
    parser errors quote the offending bytes, which may hold anything)."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or type(exc.os_error).__name__
        return f"{name}: cannot connect to {exc.host}:{exc.port}: {_redact(str(why), *secrets)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{name}: the connection closed before a complete answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"{name}: the answer's body was cut short or could not be decoded"
    if isinstance(exc, aiohttp.ClientResponseError):
        first = str(exc.message).split("\n", 1)[0]
        return f"{name}: not a valid HTTP answer ({_redact(first, *secrets, limit=80)})"
    return f"{name}: {_redact(str(exc), *secrets, limit=120)}" if str(exc) else name


def _parse_reset(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RATELIMIT_RESET)


def _parse_token(token_type: str, body: dict[str, Any], now: float) -> Token:
    name = TOKEN_FIELDS[token_type]
    value = body.get(name)
    expire = body.get("expire")
    if not isinstance(value, str) or not value:
        raise _Malformed(f"answer has code 0 but no string '{name}'")
    if not _TOKEN_RE.fullmatch(value):
        raise _Malformed(
            f"answer has code 0 but '{name}' is not 1-4096 printable ASCII characters "
            f"without spaces ({len(value)} characters)"
        )
    if not _is_int(expire) or expire <= 0:
        raise _Malformed("answer has code 0 but no positive whole number of seconds 'expire'")
    if expire > MAX_EXPIRE:
        raise _Malformed(
            f"answer has code 0 but 'expire' {expire if expire < 10**12 else 'huge'} is more "
            f"than a day (a token lives at most 2 hours)"
        )
    return Token(value=value, token_type=token_type, expires_at=now + expire, obtained_at=now)


class OpenPlatformClient:
    def __init__(
        self,
        *,
        rate_per_second: float = 10.0,
        burst: int = 20,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        max_ratelimit_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        rng: Callable[[], float] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self.max_body_bytes = max_body_bytes
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_ratelimit_wait = max_ratelimit_wait
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.random
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + read_timeout, connect=connect_timeout, sock_read=read_timeout
        )
        self._user_agent = user_agent
        self._session = session
        self._own_session = session is None
        self._bucket = TokenBucket(rate_per_second, burst, clock=clock, sleep=sleep)
        self._flight: SingleFlight[CacheKey, Token] = SingleFlight()
        self._cache: dict[CacheKey, Token] = {}
        # (base_url, app_id) -> clock time before which the platform asked us not to call
        self._blocked_until: dict[tuple[str, str], float] = {}
        self._last_ok: float | None = None
        self._last_failure: float | None = None
        self._last_failure_code: str | None = None

    # --- public API ------------------------------------------------------------------------

    async def get_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        token_type: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        """A token valid for at least `min_valid_for` more seconds: from the cache when it
        has one (unless `force`), else from one upstream call shared by all concurrent
        callers with the same key. Raises OpenPlatformError."""
        key = self._key(base_url, app_id, app_secret, token_type)
        if len(app_secret) > MAX_SECRET_LENGTH:
            # Not sent: it is not an App Secret (32 characters) but a file or a certificate
            # in the wrong key, and would only earn an error (or a 413) from the platform.
            raise OpenPlatformError(
                kind=ErrorKind.CREDENTIALS,
                reason="InvalidCredentials",
                retryable=False,
                endpoint=TOKEN_PATHS[token_type],
                msg=f"the app secret is {len(app_secret)} characters long (an App Secret has "
                f"32; at most {MAX_SECRET_LENGTH} are sent): not sent to the Open Platform",
                label="secret_too_long",
            )
        cached = self._cache.get(key)
        if cached is not None and not force and cached.remaining(self._clock()) >= min_valid_for:
            metrics.TOKEN_CACHE_HITS.inc()
            return cached
        rid = request_id or uuid.uuid4().hex[:16]
        return await self._flight.do(
            key,
            lambda: self._fetch_token(key, app_secret, rid),
            on_join=metrics.SINGLEFLIGHT_JOINS.inc,
        )

    def cached_token(
        self, base_url: str, app_id: str, app_secret: str, token_type: str
    ) -> Token | None:
        """The last good token for this key, even if expired (None if there never was one)."""
        return self._cache.get(self._key(base_url, app_id, app_secret, token_type))

    def invalidate(self, base_url: str, app_id: str, app_secret: str, token_type: str) -> None:
        """Drop the cached token, e.g. after the platform answered 99991663/99991664."""
        self._cache.pop(self._key(base_url, app_id, app_secret, token_type), None)

    async def bot_info(
        self, base_url: str, tenant_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """GET /open-apis/bot/v3/info: the `bot` object (activate_status 2 = enabled).
        A cheap check that a tenant token is accepted; needs the bot capability."""

        def parse(body: dict[str, Any], now: float) -> dict[str, Any]:
            bot = body.get("bot")
            if not isinstance(bot, dict):
                raise _Malformed("answer has code 0 but no object 'bot'")
            return bot

        return await self._call(
            "GET",
            base_url.rstrip("/"),
            BOT_INFO_PATH,
            json_body=None,
            headers={"Authorization": f"Bearer {tenant_token}"},
            app_id=None,
            request_id=request_id or uuid.uuid4().hex[:16],
            redact=(tenant_token,),
            parse=parse,
        )

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> OpenPlatformClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals -------------------------------------------------------------------------

    @staticmethod
    def _key(base_url: str, app_id: str, app_secret: str, token_type: str) -> CacheKey:
        if token_type not in TOKEN_PATHS:
            raise ValueError(f"token_type must be 'tenant' or 'app', got {token_type!r}")
        return (base_url.rstrip("/"), app_id, secret_digest(app_secret), token_type)

    async def _fetch_token(self, key: CacheKey, app_secret: str, request_id: str) -> Token:
        base_url, app_id, _, token_type = key
        token = await self._call(
            "POST",
            base_url,
            TOKEN_PATHS[token_type],
            json_body={"app_id": app_id, "app_secret": app_secret},
            headers={"Content-Type": "application/json; charset=utf-8"},
            app_id=app_id,
            request_id=request_id,
            redact=(app_secret,),
            parse=lambda body, now: _parse_token(token_type, body, now),
        )
        now = self._clock()
        # Keep the cache bounded by liveness: rotated secrets leave expired entries behind.
        for k in [k for k, t in self._cache.items() if t.expires_at < now and k != key]:
            del self._cache[k]
        self._cache[key] = token
        log.info(
            "%s token obtained for %s, expires in %ds (%s)",
            token_type,
            app_id,
            token.remaining(now),
            token.fingerprint(),
            extra={"request_id": request_id, "app_id": app_id, "error_code": None},
        )
        return token

    async def _call(
        self,
        method: str,
        base_url: str,
        path: str,
        *,
        json_body: dict[str, Any] | None,
        headers: dict[str, str],
        app_id: str | None,
        request_id: str,
        redact: tuple[str, ...],
        parse: Callable[[dict[str, Any], float], T],
    ) -> T:
        """One logical call: up to max_attempts HTTP attempts."""
        extra: dict[str, Any] = {"request_id": request_id, "app_id": app_id, "error_code": None}
        for attempt in range(self.max_attempts):
            if app_id is not None:
                await self._upstream_gate(base_url, app_id, path)
            waited = await self._bucket.acquire()
            if waited > 0:
                metrics.RATE_LIMIT_WAITS.labels(source="local").inc()
                metrics.RATE_LIMIT_WAIT_SECONDS.labels(source="local").inc(waited)
            try:
                return await self._attempt(
                    method, base_url, path, json_body, headers, redact, parse
                )
            except OpenPlatformError as err:
                extra["error_code"] = err.code
                if err.kind is ErrorKind.RATE_LIMITED and err.retry_after and app_id is not None:
                    until = self._clock() + err.retry_after
                    key = (base_url, app_id)
                    self._blocked_until[key] = max(until, self._blocked_until.get(key, 0.0))
                delay = self._retry_delay(err, attempt)
                if delay is None:
                    log.warning("%s", err, extra=extra)
                    raise
                log.warning(
                    "%s (attempt %d/%d, retrying)", err, attempt + 1, self.max_attempts, extra=extra
                )
                if delay > 0:
                    await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_delay(self, err: OpenPlatformError, attempt: int) -> float | None:
        """Seconds to sleep before the next attempt; None when the error is final."""
        if attempt + 1 >= self.max_attempts:
            return None
        if err.kind is ErrorKind.RATE_LIMITED:
            if err.retry_after is not None:
                # The upstream gate at the top of the next attempt does the waiting.
                return 0.0 if err.retry_after <= self.max_ratelimit_wait else None
            return self._backoff(attempt)
        if err.kind in (ErrorKind.TRANSIENT, ErrorKind.UNKNOWN):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng)

    async def _upstream_gate(self, base_url: str, app_id: str, endpoint: str) -> None:
        """Honour an x-ogw-ratelimit-reset received earlier for this app: wait it out when
        short, otherwise fail fast without calling the platform again."""
        key = (base_url, app_id)
        until = self._blocked_until.get(key)
        if until is None:
            return
        wait = until - self._clock()
        if wait > self.max_ratelimit_wait:
            raise OpenPlatformError(
                kind=ErrorKind.RATE_LIMITED,
                reason="RateLimited",
                retryable=True,
                endpoint=endpoint,
                msg="still inside the x-ogw-ratelimit-reset window of an earlier answer",
                retry_after=wait,
            )
        if wait > 0:
            metrics.RATE_LIMIT_WAITS.labels(source="upstream").inc()
            metrics.RATE_LIMIT_WAIT_SECONDS.labels(source="upstream").inc(wait)
            await self._sleep(wait)
        if self._blocked_until.get(key) == until:
            del self._blocked_until[key]

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self._user_agent})
            self._own_session = True
        return self._session

    async def _attempt(
        self,
        method: str,
        base_url: str,
        path: str,
        json_body: dict[str, Any] | None,
        headers: dict[str, str],
        redact: tuple[str, ...],
        parse: Callable[[dict[str, Any], float], T],
    ) -> T:
        started = time.perf_counter()
        session = await self._get_session()
        data = None if json_body is None else json.dumps(json_body).encode()
        try:
            async with session.request(
                method,
                base_url + path,
                data=data,
                headers=headers,
                timeout=self._timeout,
                # The API never redirects; following one would re-send the app secret
                # (307/308 keep the body) to wherever the Location header points.
                allow_redirects=False,
            ) as resp:
                status = resp.status
                content_type = resp.headers.get("Content-Type", "")
                retry_after = _parse_reset(resp.headers.get("x-ogw-ratelimit-reset"))
                raw = await self._read_capped(resp)
        except _TooLarge as exc:
            err = OpenPlatformError.from_answer(
                endpoint=path,
                code=None,
                http_status=exc.status,
                msg=f"answer larger than {self.max_body_bytes} bytes{exc.declared}; not read "
                "further (an auth answer is a few hundred bytes: is spec.domain the Open "
                "Platform?)",
                label="oversized",
            )
            self._record(path, err.code_label, started, failed=True)
            raise err from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            timeout = self._timeout.total if isinstance(exc, TimeoutError) else None
            err = OpenPlatformError.from_answer(
                endpoint=path,
                code=None,
                http_status=None,
                msg=_describe_failure(exc, timeout, *redact),
            )
            self._record(path, err.code_label, started, failed=True)
            raise err from None
        try:
            result = _interpret(
                path, status, content_type, retry_after, raw, self._clock(), redact, parse
            )
        except OpenPlatformError as err:
            self._record(path, err.code_label, started, failed=True)
            raise
        self._record(path, "0", started, failed=False)
        return result

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, or _TooLarge as soon as it is known to exceed max_body_bytes (from
        Content-Length, or while reading the decoded stream: a small compressed body may
        inflate to gigabytes)."""
        cap = self.max_body_bytes
        declared = resp.content_length
        if declared is not None and declared > cap:
            raise _TooLarge(resp.status, f" (Content-Length {declared})")
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            buf += chunk
            if len(buf) > cap:
                raise _TooLarge(resp.status, "")
        return bytes(buf)

    def health(self) -> dict[str, Any]:
        """For /health: how the last upstream calls went (no secrets, no tokens)."""
        now = self._clock()
        return {
            "lastSuccessAt": self._last_ok,
            "lastFailureAt": self._last_failure,
            "lastFailureCode": self._last_failure_code,
            "inflight": len(self._flight._inflight),
            "cachedTokens": len(self._cache),
            "rateLimitedApps": sum(1 for t in self._blocked_until.values() if t > now),
        }

    def _record(self, endpoint: str, code: str, started: float, *, failed: bool) -> None:
        if failed:
            self._last_failure, self._last_failure_code = self._clock(), code
        else:
            self._last_ok = self._clock()
        metrics.API_CALLS.labels(endpoint=endpoint, code=code).inc()
        if failed:
            metrics.API_ERRORS.labels(endpoint=endpoint, code=code).inc()
        metrics.API_CALL_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _interpret(
    path: str,
    status: int,
    content_type: str,
    retry_after: float | None,
    raw: bytes,
    now: float,
    redact: tuple[str, ...],
    parse: Callable[[dict[str, Any], float], T],
) -> T:
    """Turn one HTTP answer into a result or an OpenPlatformError. The body's `code` is
    authoritative whatever the HTTP status: the platform often answers 200 with an error."""
    problem, body = _read_json(raw)
    if body is not None:
        code = body.get("code")
        if not _is_int(code):
            problem = "no integer 'code'"
        elif code not in _CODE_RANGE:
            problem = "'code' is not a 32-bit integer"
    if problem is not None or body is None:
        # An HTML error page from a gateway, a truncated body, JSON of the wrong shape.
        what = content_type and _redact(content_type, *redact, limit=60)
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
            msg=_redact(msg, *redact, *answered) if isinstance(msg, str) else "(msg not text)",
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
    except _Malformed as exc:
        raise OpenPlatformError.from_answer(
            endpoint=path, code=None, http_status=status, msg=str(exc), label="malformed"
        ) from None


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
