"""The one sha256 helper of the Open Platform client.

The token cache keys on a secret's digest (never the secret itself) and a token's
fingerprint is a prefix of its digest. It is one small function so that it can move to a
shared module of digests as it is.
"""

from __future__ import annotations

import hashlib


def sha256_hex(text: str) -> str:
    """The hex sha256 of the text's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()
