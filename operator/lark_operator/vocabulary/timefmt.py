"""Times and durations as the operator writes and reads them: RFC 3339 in UTC to the second
(status, Secrets, Events), and Go-style durations ('10m', '1h30m', '500ms') as the CRD
accepts them."""

from __future__ import annotations

import datetime as dt
import re


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError naming the input when malformed."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f"not a duration like '30s', '10m' or '1h30m': {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Short human form: 95 -> '1m35s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"
