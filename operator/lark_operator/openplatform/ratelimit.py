"""The two rate limits every Open Platform call of one client goes through.

`TokenBucket` is our own limit, shared by all calls: each caller reserves a token at once
(the balance may go negative) and then sleeps for its reservation: no lock, first come
first served, and waiting callers cannot be overtaken.

`UpstreamBlocks` is the platform's: once an answer carried x-ogw-ratelimit-reset for an
app, later calls for that app (any token type, any caller) wait the window out when it is
short and fail fast without calling when it is long, instead of earning another 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from lark_operator import metrics
from lark_operator.openplatform.errors import ErrorKind, OpenPlatformError

AppKey = tuple[str, str]  # base_url, app_id


class TokenBucket:
    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be > 0, got {rate_per_second}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        # max(0, ...): a wall clock stepping backwards must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def reserve(self) -> float:
        """Take one token now; return how many seconds the caller must wait for it."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited (0.0 when one was available)."""
        wait = self.reserve()
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                self._tokens += 1.0  # hand the reservation back to those behind us
                raise
        return wait


class UpstreamBlocks:
    def __init__(
        self,
        *,
        max_wait: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        # app -> clock time before which the platform asked us not to call
        self._until: dict[AppKey, float] = {}

    def block(self, app: AppKey, seconds: float) -> None:
        """The platform asked for `seconds` of quiet for this app (a later, shorter answer
        does not shorten a window already known)."""
        until = self._clock() + seconds
        self._until[app] = max(until, self._until.get(app, 0.0))

    async def gate(self, app: AppKey, endpoint: str) -> None:
        """Honour an x-ogw-ratelimit-reset received earlier for this app: wait it out when
        short, otherwise fail fast without calling the platform again."""
        until = self._until.get(app)
        if until is None:
            return
        wait = until - self._clock()
        if wait > self.max_wait:
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
        if self._until.get(app) == until:
            del self._until[app]

    def blocked(self) -> int:
        """How many apps are inside a reset window now."""
        now = self._clock()
        return sum(1 for t in self._until.values() if t > now)
