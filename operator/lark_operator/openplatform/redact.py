"""Redaction: text from the other side made fit for an error message, a log line and status.

The platform's `msg`, a header, an exception raised while talking to it: any of them may
echo the app secret or a token (a gateway quoting the request body, a parser quoting the
bytes it choked on), and may hold control characters or megabytes. Everything the client
puts into an OpenPlatformError or a log line from upstream passes through here.
"""

from __future__ import annotations

import json

import aiohttp

MAX_MSG = 300  # the platform's msg is echoed into errors and logs: keep it short


def printable(text: str) -> str:
    """One printable line: tabs and newlines become spaces, other controls '?'."""
    return "".join(ch if ch.isprintable() else (" " if ch in "\t\n\r" else "?") for ch in text)


def _variants(secrets: tuple[str, ...]) -> list[str]:
    """Each secret as it may come back: verbatim, JSON-escaped (an echoed request body)
    and with non-printable characters replaced (as `printable` shows text)."""
    out: set[str] = set()
    for s in secrets:
        if s:
            out.update({s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]})
            out.add(printable(s))
    return sorted(out, key=len, reverse=True)


def redact(text: str, *secrets: str, limit: int = MAX_MSG) -> str:
    """`text` with the secrets replaced by ***, as one printable line of at most `limit`
    characters (and an ellipsis)."""
    text = printable(text)
    variants = _variants(secrets)
    for s in variants:
        text = text.replace(s, "***")
    if any(s in text for s in variants):  # a replacement made up a new occurrence
        return "(withheld: it contained a secret)"
    return text if len(text) <= limit else text[:limit] + "..."


def describe_failure(exc: BaseException, timeout: float | None, *secrets: str) -> str:
    """What went wrong on the wire, without echoing what the upstream sent (aiohttp's
    parser errors quote the offending bytes, which may hold anything)."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or type(exc.os_error).__name__
        return f"{name}: cannot connect to {exc.host}:{exc.port}: {redact(str(why), *secrets)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{name}: the connection closed before a complete answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"{name}: the answer's body was cut short or could not be decoded"
    if isinstance(exc, aiohttp.ClientResponseError):
        first = str(exc.message).split("\n", 1)[0]
        return f"{name}: not a valid HTTP answer ({redact(first, *secrets, limit=80)})"
    return f"{name}: {redact(str(exc), *secrets, limit=120)}" if str(exc) else name
