"""A store app's tokens in the token Secret (DESIGN.md "Store (marketplace) apps"), pure:
`app_access_token`, and per tenant `tenant_access_token.<tenant_key>` and
`expires_at.<tenant_key>` (RFC 3339).

In HeldTokens a store app's tokens are typed "app" and "tenant:<tenant_key>", so the rest
of the token Secret code (fingerprint, earliest expiry, blind writes) works unchanged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from lark_operator.vocabulary.timefmt import parse_rfc3339, rfc3339

TENANT_PREFIX = "tenant:"
TENANT_TOKEN_KEY = "tenant_access_token."
TENANT_EXPIRY_KEY = "expires_at."


def tenant_type(tenant_key: str) -> str:
    return TENANT_PREFIX + tenant_key


def tenant_of(token_type: str) -> str | None:
    return token_type[len(TENANT_PREFIX) :] if token_type.startswith(TENANT_PREFIX) else None


def is_store_key(data_key: str) -> bool:
    return data_key.startswith((TENANT_TOKEN_KEY, TENANT_EXPIRY_KEY))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tenant_data(values: Mapping[str, str], expires_at: Mapping[str, float]) -> dict[str, str]:
    """The per-tenant data keys (base64) of the tenant tokens among `values`."""
    data = {}
    for token_type, value in sorted(values.items()):
        tenant = tenant_of(token_type)
        if tenant is not None:
            data[TENANT_TOKEN_KEY + tenant] = _b64(value)
            data[TENANT_EXPIRY_KEY + tenant] = _b64(rfc3339(expires_at[token_type]) or "")
    return data


def read_tenants(data: Mapping[str, str]) -> tuple[dict[str, str], dict[str, float]] | None:
    """The tenant tokens in a token Secret's data ({} when none; None when unreadable)."""
    values: dict[str, str] = {}
    expires: dict[str, float] = {}
    for key, raw in data.items():
        if not key.startswith(TENANT_TOKEN_KEY):
            continue
        tenant = key[len(TENANT_TOKEN_KEY) :]
        try:
            value = base64.b64decode(raw).decode()
            expiry = parse_rfc3339(
                base64.b64decode(data.get(TENANT_EXPIRY_KEY + tenant, "")).decode()
            )
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if expiry is None:
            return None
        values[tenant_type(tenant)], expires[tenant_type(tenant)] = value, expiry
    return values, expires


def stale_keys(have: Iterable[str], want: Iterable[str]) -> set[str]:
    """Per-tenant keys in a Secret that the desired content no longer has (an uninstalled
    or unlisted tenant): dropped on the next write."""
    return {k for k in have if is_store_key(k)} - set(want)


def by_type(expires_at: Mapping[str, float]) -> dict[str, float]:
    """Expiry per metric token type: a store app's tenants fold into one "tenant" series,
    the earliest (bounded labels: never a tenant key)."""
    out = {t: e for t, e in expires_at.items() if tenant_of(t) is None}
    tenants = [e for t, e in expires_at.items() if tenant_of(t) is not None]
    if tenants:
        out["tenant"] = min(tenants)
    return out
