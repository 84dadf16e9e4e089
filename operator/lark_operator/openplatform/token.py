"""What the client fetches: the two kinds of access token and the Token value it hands out.

Kept apart from the cache, the transport and the parser because all three use it, and so
do callers outside the package. A Token never shows its value in repr or str: it travels
through logs and exception text by its fingerprint only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lark_operator.vocabulary.digests import fingerprint

# token type -> the self-built-app endpoint that issues it, and the answer field holding it
TOKEN_PATHS = {
    "tenant": "/open-apis/auth/v3/tenant_access_token/internal",
    "app": "/open-apis/auth/v3/app_access_token/internal",
}
TOKEN_FIELDS = {"tenant": "tenant_access_token", "app": "app_access_token"}
# A store (marketplace) app's endpoints: the app token from an app_ticket, a tenant token
# per tenant from the app token, and asking the platform to push the ticket again.
STORE_TOKEN_PATHS = {
    "app": "/open-apis/auth/v3/app_access_token",
    "tenant": "/open-apis/auth/v3/tenant_access_token",
}
TICKET_RESEND_PATH = "/open-apis/auth/v3/app_ticket/resend"
TICKET_INVALID = 10012  # the app_ticket is stale or unknown: ask for a resend


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    token_type: str  # "tenant" | "app"
    expires_at: float  # epoch seconds: obtained_at + the `expire` returned
    obtained_at: float

    def fingerprint(self) -> str:
        """Short hash that identifies a token in status and logs without revealing it."""
        return fingerprint(self.value)

    def remaining(self, now: float) -> float:
        return self.expires_at - now

    def __repr__(self) -> str:
        return (
            f"Token(token_type={self.token_type!r}, fingerprint={self.fingerprint()!r}, "
            f"expires_at={self.expires_at!r}, obtained_at={self.obtained_at!r})"
        )

    __str__ = __repr__
