"""What a store LarkApp carries between refreshes (reconcile/storeapp.py updates it, status
summarises it): per-tenant failures and backoff, the tenants wanted, the ticket's age."""

from __future__ import annotations

from dataclasses import dataclass, field

from lark_operator.status.facts import StoreFacts
from lark_operator.tokens.secret import HeldTokens
from lark_operator.tokens.storetokens import tenant_of


@dataclass
class TenantFailure:
    failures: int = 0
    next_try_at: float = 0.0
    reason: str = ""


@dataclass
class StoreProgress:
    """What a store LarkApp carries between refreshes (and status summarises)."""

    failing: dict[str, TenantFailure] = field(default_factory=dict)
    desired: frozenset[str] = frozenset()
    ticket_received_at: float | None = None
    ticket_stale: bool = False
    refetch_app_token: bool = False  # the platform refused the app token held

    def facts(self, held: HeldTokens | None, now: float) -> StoreFacts:
        expiry = {
            tk: e for t, e in (held.expires_at if held else {}).items() if (tk := tenant_of(t))
        }
        wanted = [expiry[tk] for tk in self.desired if tk in expiry]
        return StoreFacts(
            ticket_received_at=self.ticket_received_at,
            tenants=len(self.desired),
            ready=sum(1 for e in wanted if e > now),
            failing=len(self.failing),
            earliest_tenant_expiry=min(wanted) if wanted else None,
        )
