"""Parse dependency URLs and keep their passwords out of anything a person can read.

Drivers put the DSN into some exception texts, so every message built from a driver error
goes through `scrub` before it reaches a result, a log line or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

SCHEMES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgresql", "postgres"),
    "redis": ("redis", "rediss"),
    "rabbitmq": ("amqp", "amqps"),
    "management": ("http", "https"),
}
MASK = "***"
# Query parameters that carry a credential in the DSN/URL dialects we accept.
_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "sslpassword", "token"})
# Credentials inside any URL-looking text: scheme://user:SECRET@
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")


class InvalidURL(ValueError):
    """The URL cannot be used. The message never contains the URL itself."""


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str
    port: int | None
    username: str | None
    password: str | None = field(repr=False)
    path: str  # database name, vhost or db number, percent-decoded, without the leading '/'


def parse(url: str, schemes: Collection[str] | None = None) -> ParsedURL:
    """Split a URL; InvalidURL says what is wrong without repeating the URL."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL("the URL is empty")
    if url != url.strip():
        raise InvalidURL("the URL has leading or trailing whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidURL("the port is not a number between 0 and 65535") from None
    if not parts.scheme or "://" not in url:
        raise InvalidURL("not a URL of the form scheme://user:password@host:port/path")
    scheme = parts.scheme.lower()
    if schemes is not None and scheme not in schemes:
        raise InvalidURL(f"scheme {scheme!r} is not one of {', '.join(sorted(schemes))}")
    host = parts.hostname or ""
    if not host and not dict(parse_qsl(parts.query)).get("host"):
        raise InvalidURL("the URL names no host")
    return ParsedURL(
        scheme=scheme,
        host=host,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        path=unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path),
    )


def redact(url: str | None) -> str:
    """The URL with its password (and password-like query values) replaced by ***."""
    if not url:
        return ""
    if "://" not in url:  # e.g. a libpq "key=value" string: cannot tell what is secret
        return "<unparseable URL>"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return _URL_CREDENTIALS.sub(rf"\1{MASK}@", url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
        query = "&".join(
            f"{quote(k, safe='')}={MASK if k.lower() in _SECRET_PARAMS else quote(v, safe='')}"
            for k, v in pairs
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_in(urls: Iterable[str | None]) -> list[str]:
    """Every credential spelled in the URLs, raw and percent-decoded, longest first."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None:
            if parts.password:
                found.update({parts.password, unquote(parts.password)})
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key.lower() in _SECRET_PARAMS and value:
                    found.update({value, quote(value, safe="")})
        # A URL urlsplit cannot read may still carry user:password@.
        for match in re.finditer(r"://[^:/@\s]*:([^@\s]+)@", url):
            found.update({match.group(1), unquote(match.group(1))})
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """Remove the URLs' credentials, and any user:password@ in a URL, from free text."""
    for url in urls:
        if url:
            text = text.replace(url, redact(url))
    for secret in secrets_in(urls):
        text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)
