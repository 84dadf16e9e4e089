"""What the operator observed about one LarkApp: the input of `build_status`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.reasons import Reason


@dataclass(frozen=True, slots=True)
class Credentials:
    """What is known about the credentials: Valid, a CREDENTIAL_FAILURES word (wrong),
    or RateLimited / UpstreamUnavailable / UnknownError (could not tell)."""

    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class TokenFacts:
    secret_name: str
    expires_at: float
    refreshed_at: float
    next_refresh_at: float | None
    fingerprint: str
    renewed: bool  # a token was replaced at least once (Refreshed vs Issued)
    # When the operator's capacity plan projects its refresh, if after expiry (None: fine).
    at_risk: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorFacts:
    reason: Reason
    message: str
    code: int | None = None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """A store app's ticket and tenants, summarised (counts, never the list)."""

    ticket_received_at: float | None
    tenants: int
    ready: int
    failing: int
    earliest_tenant_expiry: float | None


@dataclass(frozen=True, slots=True)
class AvailabilityFacts:
    """What bot/v3/info said of the app: status True/False/Unknown, an AppAvailable reason,
    the verbatim activate_status in the message."""

    status: str
    reason: Reason
    message: str
    activate_status: int | None = None


@dataclass(frozen=True)
class Observed:
    generation: int
    now: float
    suspended: bool = False
    credentials: Credentials | None = None
    token: TokenFacts | None = None
    last_error: ErrorFacts | None = None
    consecutive_failures: int = 0
    configured_probes: tuple[Dependency, ...] = ()
    # dependency -> the status.probes entry last decided to be written
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    store: StoreFacts | None = None
    availability: AvailabilityFacts | None = None
    # The RolloutRestart condition's (status, reason, message); None: none configured.
    rollout: tuple[str, str, str] | None = None
