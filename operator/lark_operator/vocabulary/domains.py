"""The Open Platform's two public domains (shared/lark-open-api.md, "Base URLs")."""

from __future__ import annotations

from urllib.parse import urlsplit

BASE_URLS = {
    "feishu": "https://open.feishu.cn",
    "lark": "https://open.larksuite.com",
}


def base_url(domain: str) -> str:
    """`feishu`/`lark` as their base URL, a URL without its trailing slash (whether a URL
    may be used at all is lark_operator.credentials' decision)."""
    return BASE_URLS.get(domain, domain).rstrip("/")


def is_base_url(url: str) -> bool:
    """An http(s) URL with a host and nothing after the path (a usable base URL)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:  # e.g. an unclosed IPv6 bracket, a bad port
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(host)
        and not parts.query
        and not parts.fragment
        and not any(c.isspace() for c in url)
    )
