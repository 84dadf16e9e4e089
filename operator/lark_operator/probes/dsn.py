"""Parse dependency URLs and keep their passwords out of anything a person can read.

Passwords are removed by structure, never by replacing their text wherever it occurs: a
password is the userinfo password or a password-like query value of a URL, or the value of
a `password=...` pair (libpq's key=value form), and only those fields are masked. If the
password then still stands somewhere in the text as a token of its own (not inside a
word), the message is withheld whole: masking a one-letter password everywhere would turn
"upgrade" into "u***grade", mangling the message and spelling out the password.

Drivers put the DSN into some exception texts, so every message built from a driver error
goes through `scrub` before it reaches a result, a log line or the CLI.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

SCHEMES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgresql", "postgres"),
    "redis": ("redis", "rediss"),
    "rabbitmq": ("amqp", "amqps"),
    "management": ("http", "https"),
}
MASK = "***"
WITHHELD = "(message withheld: it contained the password)"
# Query parameters and key=value keys that carry a credential in the dialects we accept.
_SECRET_KEYS = frozenset({"password", "pass", "passwd", "sslpassword", "token"})
# A URL inside free text: scheme:// up to whitespace, a quote or an angle bracket.
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")
_URL_END = re.compile(r"[\s'\"<>`]")
# key=value as libpq writes it: the value single-quoted (backslash escapes) or up to
# whitespace; double quotes are accepted too, as other tools print them.
_KEY_VALUE = re.compile(
    r"(?<!\w)(?P<key>[A-Za-z_]\w*)[ \t]*=[ \t]*"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s'\"]\S*)"
)
# A whole string of such pairs. Possessive (*+): a value ends at whitespace, and without
# backtracking into it a long "a=a=a..." cannot take exponential time.
_CONNINFO = re.compile(r"\s*+(?:[A-Za-z_]\w*+[ \t]*+=[ \t]*+(?:'(?:[^'\\]|\\.)*+'|\S*+)\s*+)++")

Span = tuple[int, int]


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
    """The URL (or libpq key=value string) with its password and password-like query
    values replaced by ***, everything else as written."""
    if not url:
        return ""
    if "://" not in url and not _CONNINFO.fullmatch(url):
        return "<unparseable URL>"
    return _masked(url, _credential_spans(url))


def secrets_in(urls: Iterable[str | None]) -> list[str]:
    """Every credential the URLs (or key=value strings) carry, as written, decoded and
    percent-encoded, longest first."""
    found: set[str] = set()
    for url in filter(None, urls):
        for start, end in _credential_spans(url):
            value = _unquoted(url[start:end])
            decoded = unquote(value)
            found.update({value, decoded, quote(decoded, safe="")})
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """Free text with every credential field in it masked (the URLs' and any other URL's
    or key=value pair's); withheld whole if a password of `urls` still stands in it."""
    spans = _credential_spans(text)
    out = _masked(text, spans)
    for secret in secrets_in(urls):
        unmasked = (t for t in _tokens(text, secret) if not _covered(t, spans))
        if any(unmasked) or any(_tokens(out, secret)):
            return WITHHELD
    return out


def _credential_spans(text: str) -> list[Span]:
    """Where the credential values are: URL passwords, password-like query values,
    password=... pairs outside URLs. Merged and sorted."""
    spans: list[Span] = []
    urls = _urls_in(text)
    for start, end in urls:
        spans += _url_credential_spans(text, start, end)
    for m in _KEY_VALUE.finditer(text):
        inside_url = any(a <= m.start() < b for a, b in urls)
        if m.group("key").lower() in _SECRET_KEYS and m.group("value") and not inside_url:
            spans.append(m.span("value"))
    return _merged(spans)


def _urls_in(text: str) -> list[Span]:
    """Every scheme://... in the text, a URL inside another one's query included."""
    found: list[Span] = []
    sep = text.find("://")
    while sep != -1:
        start = sep
        while start > 0 and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        end = _URL_END.search(text, sep + 3)
        found.append((start, end.start() if end else len(text)))
        sep = text.find("://", sep + 3)
    return found


def _url_credential_spans(text: str, start: int, end: int) -> list[Span]:
    """The URL text[start:end] split as urlsplit splits it (netloc up to the first of
    '/?#', userinfo before the last '@' of the netloc, the password after its first ':',
    the query between the first '?' and '#'), as positions, which urlsplit does not give."""
    netloc_start = text.index("://", start, end) + 3
    netloc_end = _first_of(text, "/?#", netloc_start, end)
    spans: list[Span] = []
    at = text.rfind("@", netloc_start, netloc_end)
    colon = text.find(":", netloc_start, at) if at != -1 else -1
    if colon != -1 and colon + 1 < at:
        spans.append((colon + 1, at))
    fragment = _first_of(text, "#", netloc_end, end)
    question = text.find("?", netloc_end, fragment)
    if question != -1:
        pos = question + 1
        for pair in text[pos:fragment].split("&"):
            key, eq, value = pair.partition("=")
            if eq and value and unquote(key).lower() in _SECRET_KEYS:
                spans.append((pos + len(key) + 1, pos + len(pair)))
            pos += len(pair) + 1
    return spans


def _unquoted(value: str) -> str:
    """A key=value value as libpq reads it: quotes removed, backslash escapes undone."""
    if value[:1] not in ("'", '"'):
        return value
    body = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
    return re.sub(r"\\(.)", r"\1", body)


def _first_of(text: str, chars: str, start: int, end: int) -> int:
    hits = [i for i in (text.find(c, start, end) for c in chars) if i != -1]
    return min(hits, default=end)


def _merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def _masked(text: str, spans: list[Span]) -> str:
    pieces, pos = [], 0
    for start, end in spans:
        pieces += [text[pos:start], MASK]
        pos = end
    return "".join(pieces) + text[pos:]


def _covered(token: Span, spans: list[Span]) -> bool:
    return any(a <= token[0] and token[1] <= b for a, b in spans)


def _wordy(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _tokens(text: str, secret: str) -> Iterator[Span]:
    """Occurrences of `secret` that are not part of a longer word: 'p' in 'upgrade' is
    not one, 'p' in 'user p rejected' is. A secret edged with punctuation has no word to
    hide in on that side, so every occurrence counts there."""
    i = text.find(secret)
    while i != -1:
        j = i + len(secret)
        glued_left = i > 0 and _wordy(secret[0]) and _wordy(text[i - 1])
        glued_right = j < len(text) and _wordy(secret[-1]) and _wordy(text[j])
        if not (glued_left or glued_right):
            yield i, j
        i = text.find(secret, i + 1)
