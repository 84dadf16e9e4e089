"""Transport: one logical Open Platform call as HTTP attempts, with everything around them.

Per attempt: the platform's reset window for the app (UpstreamBlocks), our own token bucket,
one HTTP request with connect/read timeouts and no redirects, the body read up to a cap,
the answer handed to `answer.interpret`. Between attempts: the RetryPolicy's full-jitter
backoff. Every attempt is counted in the API metrics and in the figures `health()` shows.
Nothing that came from upstream reaches an error or a log line unredacted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from lark_operator import metrics
from lark_operator.openplatform.answer import Parser, interpret, parse_reset
from lark_operator.openplatform.backoff import RetryPolicy
from lark_operator.openplatform.errors import ErrorKind, OpenPlatformError
from lark_operator.openplatform.ratelimit import TokenBucket, UpstreamBlocks
from lark_operator.openplatform.redact import describe_failure

log = logging.getLogger("lark_operator.openplatform")

T = TypeVar("T")
# An auth answer is a few hundred bytes; a gateway's error page a few kilobytes. Anything
# beyond this is not read (a hostile or broken upstream must not fill the operator's memory).
MAX_BODY_BYTES = 1 << 20


class _TooLarge(Exception):
    def __init__(self, status: int, declared: str):
        super().__init__(status, declared)
        self.status, self.declared = status, declared


class Transport:
    def __init__(
        self,
        *,
        retry: RetryPolicy,
        bucket: TokenBucket,
        blocks: UpstreamBlocks,
        connect_timeout: float,
        read_timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
        session: aiohttp.ClientSession | None,
        user_agent: str,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.retry = retry
        self.blocks = blocks
        self.max_body_bytes = max_body_bytes
        self._bucket = bucket
        self._clock = clock
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + read_timeout, connect=connect_timeout, sock_read=read_timeout
        )
        self._user_agent = user_agent
        self._session = session
        self._own_session = session is None
        self.last_ok: float | None = None
        self.last_failure: float | None = None
        self.last_failure_code: str | None = None

    async def call(
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
        parse: Parser[T],
    ) -> T:
        """One logical call: up to max_attempts HTTP attempts. `app_id` (None for calls made
        with a token) is what an x-ogw-ratelimit-reset applies to; `redact` is what must not
        come back in an error or a log line."""
        extra: dict[str, Any] = {"request_id": request_id, "app_id": app_id, "error_code": None}
        for attempt in range(self.retry.max_attempts):
            if app_id is not None:
                await self.blocks.gate((base_url, app_id), path)
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
                    self.blocks.block((base_url, app_id), err.retry_after)
                delay = self.retry.delay(err, attempt)
                if delay is None:
                    log.warning("%s", err, extra=extra)
                    raise
                log.warning(
                    "%s (attempt %d/%d, retrying)",
                    err,
                    attempt + 1,
                    self.retry.max_attempts,
                    extra=extra,
                )
                if delay > 0:
                    await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self._user_agent})
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _attempt(
        self,
        method: str,
        base_url: str,
        path: str,
        json_body: dict[str, Any] | None,
        headers: dict[str, str],
        redact: tuple[str, ...],
        parse: Parser[T],
    ) -> T:
        started = time.perf_counter()
        session = await self.session()
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
                retry_after = parse_reset(resp.headers.get("x-ogw-ratelimit-reset"))
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
                msg=describe_failure(exc, timeout, *redact),
            )
            self._record(path, err.code_label, started, failed=True)
            raise err from None
        try:
            result = interpret(
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

    def _record(self, endpoint: str, code: str, started: float, *, failed: bool) -> None:
        if failed:
            self.last_failure, self.last_failure_code = self._clock(), code
        else:
            self.last_ok = self._clock()
        metrics.API_CALLS.labels(endpoint=endpoint, code=code).inc()
        if failed:
            metrics.API_ERRORS.labels(endpoint=endpoint, code=code).inc()
        metrics.API_CALL_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)
