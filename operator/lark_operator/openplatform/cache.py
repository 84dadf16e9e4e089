"""The token cache and its single-flight: at most one upstream call per key at a time.

The key is (base URL, app_id, sha256(app secret), token type): a caller with a wrong secret
never receives a token cached for the right one, and one app on two base URLs (Feishu and
Lark) are two apps. The cache only ever holds the last good token: a failed fetch leaves
it in place, so a caller can still read it (`cached`) while the platform is down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lark_operator import metrics
from lark_operator.openplatform.singleflight import SingleFlight
from lark_operator.openplatform.token import TOKEN_PATHS, Token
from lark_operator.vocabulary.digests import sha256_hex

CacheKey = tuple[str, str, str, str]  # base_url, app_id, sha256(app_secret), token_type


def cache_key(base_url: str, app_id: str, app_secret: str, token_type: str) -> CacheKey:
    if token_type not in TOKEN_PATHS:
        raise ValueError(f"token_type must be 'tenant' or 'app', got {token_type!r}")
    return (base_url.rstrip("/"), app_id, sha256_hex(app_secret), token_type)


class TokenCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[CacheKey, Token] = {}
        self._flight: SingleFlight[CacheKey, Token] = SingleFlight()

    async def get(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[Token]],
        *,
        min_valid_for: float,
        force: bool,
    ) -> Token:
        """The cached token when it stays valid for `min_valid_for` more seconds (and not
        `force`), else the result of `fetch`, shared by every concurrent caller of the key."""
        cached = self._tokens.get(key)
        if cached is not None and not force and cached.remaining(self._clock()) >= min_valid_for:
            metrics.TOKEN_CACHE_HITS.inc()
            return cached
        return await self._flight.do(
            key, lambda: self._fetch(key, fetch), on_join=metrics.SINGLEFLIGHT_JOINS.inc
        )

    def cached(self, key: CacheKey) -> Token | None:
        """The last good token for this key, even if expired."""
        return self._tokens.get(key)

    def invalidate(self, key: CacheKey) -> None:
        self._tokens.pop(key, None)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def inflight(self) -> int:
        return len(self._flight)

    async def _fetch(self, key: CacheKey, fetch: Callable[[], Awaitable[Token]]) -> Token:
        token = await fetch()  # raises on failure: the last good token stays
        now = self._clock()
        # Keep the cache bounded by liveness: rotated secrets leave expired entries behind.
        for k in [k for k, t in self._tokens.items() if t.expires_at < now and k != key]:
            del self._tokens[k]
        self._tokens[key] = token
        return token
