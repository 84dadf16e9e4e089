"""Single-flight: concurrent callers with the same key share one in-flight call.

The call runs in its own task so that a cancelled caller does not cancel it for the others;
every caller, first or joining, gets the same result or the same exception.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._inflight

    def __len__(self) -> int:
        """How many calls are in flight."""
        return len(self._inflight)

    async def do(
        self,
        key: K,
        fn: Callable[[], Awaitable[V]],
        *,
        on_join: Callable[[], None] | None = None,
    ) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        elif on_join is not None:
            on_join()
        # shield: one caller's cancellation must not cancel the call the others wait for.
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every caller may have been cancelled
