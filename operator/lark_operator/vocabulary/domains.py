"""The Open Platform's two public domains (shared/lark-open-api.md, "Base URLs")."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

BASE_URLS = {
    "feishu": "https://open.feishu.cn",
    "lark": "https://open.larksuite.com",
}


# Where clouds serve instance metadata (and credentials): never a base URL, allowlisted
# or not.
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA_HOSTS = {
    "metadata.google.internal",  # GCP
    "metadata.goog",  # GCP
    "metadata",  # GCP, from inside an instance
    "100.100.100.200",  # Alibaba Cloud
    "fd00:ec2::254",  # AWS (IPv6)
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


def metadata_address(url: str) -> str | None:
    """What `url`'s host is when it is a cloud metadata or link-local address ("a
    link-local address (169.254.0.0/16), ..."); None when it is neither."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if host in METADATA_HOSTS:
        return "a cloud metadata address"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in LINK_LOCAL:
        if ip in net:
            return f"a link-local address ({net}), where clouds serve instance metadata"
    return None
