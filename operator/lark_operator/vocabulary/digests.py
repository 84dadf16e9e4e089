"""Non-reversible digests: a token's fingerprint (safe for status, logs and the CLI) and the
sha256 used to compare or key secrets without keeping them."""

from __future__ import annotations

import hashlib


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(token: str) -> str:
    """`sha256:` and the first 12 hex digits of the token's sha256: what status, Events,
    logs and `lark-operator token-info` show instead of a token."""
    return "sha256:" + sha256_hex(token)[:12]
