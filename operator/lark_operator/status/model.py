"""The LarkApp status subresource as a typed model, field for field as the CRD declares it
(camelCase: an undeclared field would be pruned by the apiserver), and the merge patch
between two statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from lark_operator.vocabulary.reasons import ConditionType, Phase


class Status(BaseModel):
    """A part of a status subresource: every field declared, nothing else."""

    model_config = ConfigDict(extra="forbid")


class Condition(Status):
    type: ConditionType
    status: str  # True | False | Unknown
    reason: str  # a Reason word (Ready carries the reason of the problem it names)
    message: str
    observedGeneration: int
    lastTransitionTime: str | None = None


class TokenStatus(Status):
    secretName: str
    expiresAt: str | None
    refreshedAt: str | None
    fingerprint: str
    nextRefreshAt: str | None = None


class LastError(Status):
    reason: str
    message: str
    hint: str
    code: int | None = None
    at: str | None = None


class StoreStatus(Status):
    ticketReceivedAt: str | None = None
    tenants: int
    tenantsReady: int
    tenantsFailing: int
    earliestTenantExpiresAt: str | None = None


class LarkAppStatus(Status):
    observedGeneration: int
    phase: Phase
    conditions: list[Condition]
    consecutiveFailures: int
    token: TokenStatus | None = None
    # dependency -> probes.result.ProbeResult.to_status() (shaped in one place: there)
    probes: dict[str, dict[str, Any]] | None = None
    lastError: LastError | None = None
    store: StoreStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        """As written to the apiserver (no empty fields)."""
        return self.model_dump(mode="json", exclude_none=True)


def status_patch(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON merge patch turning `old` into `new` (None when equal). Keys that vanished
    are nulled so that the apiserver drops them."""
    old = old or {}
    if dict(new) == dict(old):
        return None
    patch: dict[str, Any] = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
