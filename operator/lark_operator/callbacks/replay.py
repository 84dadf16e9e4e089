"""A bounded memory of the signatures accepted within the freshness window: the same signed
request sent twice inside the window (a replay that the timestamp check alone lets through)
is refused the second time."""

from __future__ import annotations

from collections import OrderedDict


class ReplayGuard:
    def __init__(self, window: float, max_entries: int = 10_000) -> None:
        self.window, self.max_entries = window, max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> when accepted

    def first_time(self, signature: str, now: float) -> bool:
        """True (and remembered) unless this signature was accepted within the window."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.window and len(self._seen) < self.max_entries:
                break
            del self._seen[oldest]
        if signature in self._seen:
            return False
        self._seen[signature] = now
        return True
