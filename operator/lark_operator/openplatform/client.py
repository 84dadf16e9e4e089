"""Async client of the Open Platform auth API: the face the operator and the CLI use.

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

This module only wires the parts together and holds the public methods; the work is done
in cache.py (cache + single-flight), transport.py (HTTP, retries, rate limits), answer.py
(parsing answers) and redact.py (upstream text made safe).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from lark_operator import __version__
from lark_operator.openplatform.answer import parse_bot, parse_token
from lark_operator.openplatform.backoff import RetryPolicy
from lark_operator.openplatform.cache import CacheKey, TokenCache, cache_key
from lark_operator.openplatform.errors import ErrorKind, OpenPlatformError
from lark_operator.openplatform.ratelimit import TokenBucket, UpstreamBlocks
from lark_operator.openplatform.token import (
    STORE_TOKEN_PATHS,
    TICKET_RESEND_PATH,
    TOKEN_PATHS,
    Token,
)
from lark_operator.openplatform.transport import MAX_BODY_BYTES, Transport
from lark_operator.vocabulary.digests import sha256_hex

log = logging.getLogger("lark_operator.openplatform")

BOT_INFO_PATH = "/open-apis/bot/v3/info"
DEFAULT_USER_AGENT = f"lark-operator/{__version__}"
# A Secret holding something else than an App Secret (32 characters) is refused before
# sending it anywhere.
MAX_SECRET_LENGTH = 1024


def _request_id() -> str:
    return uuid.uuid4().hex[:16]


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
        self._clock = clock
        self._cache = TokenCache(clock)
        self._transport = Transport(
            retry=RetryPolicy(
                max_attempts,
                base=backoff_base,
                cap=backoff_cap,
                max_ratelimit_wait=max_ratelimit_wait,
                rng=rng or random.random,
            ),
            bucket=TokenBucket(rate_per_second, burst, clock=clock, sleep=sleep),
            blocks=UpstreamBlocks(max_wait=max_ratelimit_wait, clock=clock, sleep=sleep),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            clock=clock,
            sleep=sleep,
            session=session,
            user_agent=user_agent,
            max_body_bytes=max_body_bytes,
        )

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
        key = cache_key(base_url, app_id, app_secret, token_type)
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
        return await self._cache.get(
            key,
            lambda: self._fetch_token(key, app_secret, request_id or _request_id()),
            min_valid_for=min_valid_for,
            force=force,
        )

    def cached_token(
        self, base_url: str, app_id: str, app_secret: str, token_type: str
    ) -> Token | None:
        """The last good token for this key, even if expired (None if there never was one)."""
        return self._cache.cached(cache_key(base_url, app_id, app_secret, token_type))

    def invalidate(self, base_url: str, app_id: str, app_secret: str, token_type: str) -> None:
        """Drop the cached token, e.g. after the platform answered 99991663/99991664."""
        self._cache.invalidate(cache_key(base_url, app_id, app_secret, token_type))

    async def bot_info(
        self, base_url: str, tenant_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """GET /open-apis/bot/v3/info: the `bot` object (activate_status 2 = enabled).
        A cheap check that a tenant token is accepted; needs the bot capability."""
        return await self._transport.call(
            "GET",
            base_url.rstrip("/"),
            BOT_INFO_PATH,
            json_body=None,
            headers={"Authorization": f"Bearer {tenant_token}"},
            app_id=None,
            request_id=request_id or _request_id(),
            redact=(tenant_token,),
            parse=parse_bot,
        )

    # --- store (marketplace) apps ----------------------------------------------------------

    async def store_app_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_ticket: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        """A store app's app_access_token from its app_ticket: cached and single-flight per
        (base URL, app, secret) like the self-built tokens. 10012: the ticket is stale."""
        key = (base_url.rstrip("/"), app_id, sha256_hex(app_secret), "store-app")
        body = {"app_id": app_id, "app_secret": app_secret, "app_ticket": app_ticket}
        rid = request_id or _request_id()
        return await self._cache.get(
            key,
            lambda: self._fetch_store(key, "app", body, (app_secret, app_ticket), app_id, rid),
            min_valid_for=min_valid_for,
            force=force,
        )

    async def store_tenant_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_token: str,
        tenant_key: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        """One tenant's tenant_access_token: single-flight per (app, tenant)."""
        key = (base_url.rstrip("/"), app_id, f"{sha256_hex(app_secret)}:{tenant_key}", "store")
        body = {"app_access_token": app_token, "tenant_key": tenant_key}
        rid = request_id or _request_id()
        return await self._cache.get(
            key,
            lambda: self._fetch_store(key, "tenant", body, (app_secret, app_token), app_id, rid),
            min_valid_for=min_valid_for,
            force=force,
        )

    def invalidate_store(self, base_url: str, app_id: str, app_secret: str) -> None:
        """Drop a store app's cached app token (the platform refused it)."""
        self._cache.invalidate((base_url.rstrip("/"), app_id, sha256_hex(app_secret), "store-app"))

    async def resend_ticket(
        self, base_url: str, app_id: str, app_secret: str, *, request_id: str | None = None
    ) -> None:
        """Ask the platform to push the app_ticket to the app's event URL again."""
        await self._transport.call(
            "POST",
            base_url.rstrip("/"),
            TICKET_RESEND_PATH,
            json_body={"app_id": app_id, "app_secret": app_secret},
            headers={"Content-Type": "application/json; charset=utf-8"},
            app_id=app_id,
            request_id=request_id or _request_id(),
            redact=(app_secret,),
            parse=lambda body, now: None,
        )

    async def _fetch_store(
        self,
        key: CacheKey,
        token_type: str,
        body: dict[str, str],
        redact: tuple[str, ...],
        app_id: str,
        request_id: str,
    ) -> Token:
        token: Token = await self._transport.call(
            "POST",
            key[0],
            STORE_TOKEN_PATHS[token_type],
            json_body=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            app_id=app_id,
            request_id=request_id,
            redact=redact,
            parse=lambda answer, now: parse_token(token_type, answer, now),
        )
        log.info(
            "store %s token obtained for %s, expires in %ds (%s)",
            token_type,
            app_id,
            token.remaining(self._clock()),
            token.fingerprint(),
            extra={"request_id": request_id, "app_id": app_id, "error_code": None},
        )
        return token

    def health(self) -> dict[str, Any]:
        """For /health: how the last upstream calls went (no secrets, no tokens)."""
        t = self._transport
        return {
            "lastSuccessAt": t.last_ok,
            "lastFailureAt": t.last_failure,
            "lastFailureCode": t.last_failure_code,
            "inflight": self._cache.inflight,
            "cachedTokens": len(self._cache),
            "rateLimitedApps": t.blocks.blocked(),
        }

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> OpenPlatformClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals -------------------------------------------------------------------------

    async def _get_session(self) -> aiohttp.ClientSession:
        """The client's HTTP session (the fuzz tests drive the emulator's controls with it)."""
        return await self._transport.session()

    async def _fetch_token(self, key: CacheKey, app_secret: str, request_id: str) -> Token:
        base_url, app_id, _, token_type = key
        token = await self._transport.call(
            "POST",
            base_url,
            TOKEN_PATHS[token_type],
            json_body={"app_id": app_id, "app_secret": app_secret},
            headers={"Content-Type": "application/json; charset=utf-8"},
            app_id=app_id,
            request_id=request_id,
            redact=(app_secret,),
            parse=lambda body, now: parse_token(token_type, body, now),
        )
        now = self._clock()
        log.info(
            "%s token obtained for %s, expires in %ds (%s)",
            token_type,
            app_id,
            token.remaining(now),
            token.fingerprint(),
            extra={"request_id": request_id, "app_id": app_id, "error_code": None},
        )
        return token
