"""Which LarkApps read which Secret and which Secret holds which LarkApp's token, and the
referenced Secrets as last read.

The metadata-only Secret watch says that a Secret changed; this index says whom that
concerns. A cached Secret is dropped on any watch event for it (and after CACHE_TTL, in
case the watch is down), so a refresh cycle costs no read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from lark_operator.reconcile.state import Key

SecretRef = tuple[str, str]  # (namespace, name)
CACHE_TTL = 300.0


class SecretIndex:
    def __init__(
        self,
        read: Callable[[str, str], Awaitable[dict[str, Any] | None]],
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read, self._clock = read, clock
        self._readers: dict[SecretRef, set[Key]] = {}
        self._targets: dict[SecretRef, set[Key]] = {}
        self._indexed: dict[Key, tuple[frozenset[SecretRef], SecretRef]] = {}
        self._cache: dict[SecretRef, tuple[float, dict[str, Any] | None]] = {}

    def index(self, key: Key, reads: Iterable[str], target: str) -> None:
        """`key` reads the Secrets `reads` and writes its token to `target` (its namespace)."""
        entry = (frozenset((key[0], n) for n in reads), (key[0], target))
        if self._indexed.get(key) == entry:
            return  # unchanged: keep the cached Secrets
        self.unindex(key)
        for ref in entry[0]:
            self._readers.setdefault(ref, set()).add(key)
        self._targets.setdefault(entry[1], set()).add(key)
        self._indexed[key] = entry

    def unindex(self, key: Key) -> None:
        reads, target = self._indexed.pop(key, (frozenset(), None))
        for ref in reads:
            keys = self._readers.get(ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._readers[ref]
                    self._cache.pop(ref, None)
        if target is not None and (holders := self._targets.get(target)):
            holders.discard(key)
            if not holders:
                del self._targets[target]

    def readers(self, ref: SecretRef) -> set[Key]:
        return set(self._readers.get(ref, ()))

    def targeting(self, ref: SecretRef) -> set[Key]:
        return set(self._targets.get(ref, ()))

    def changed(self, ref: SecretRef) -> None:
        self._cache.pop(ref, None)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A referenced Secret, from the cache when fresh."""
        ref, now = (namespace, name), self._clock()
        hit = self._cache.get(ref)
        if hit is not None and now - hit[0] < CACHE_TTL:
            return hit[1]
        secret = await self._read(namespace, name)
        self._cache[ref] = (now, secret)
        return secret
