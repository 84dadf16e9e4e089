"""A ClusterLarkApp's status, from observed facts (the cluster-wide sibling of build.py):
Ready and CredentialsValid, Reconciling and Stalled for GitOps tools, the app's token as
the operator holds it, and how many LarkApps use the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lark_operator.status.build import (
    carry_transition_times,
    credentials_condition,
    last_error_status,
)
from lark_operator.status.facts import Credentials, ErrorFacts, Observed
from lark_operator.status.gitops import gitops_conditions
from lark_operator.status.model import Condition, LastError, Status
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import ConditionType, Reason
from lark_operator.vocabulary.timefmt import rfc3339

C, R = ConditionType, Reason


@dataclass(frozen=True, slots=True)
class ClusterTokenFacts:
    expires_at: float
    refreshed_at: float | None
    next_refresh_at: float | None
    fingerprint: str


@dataclass(frozen=True)
class ClusterObserved:
    generation: int
    now: float
    credentials: Credentials | None
    token: ClusterTokenFacts | None
    last_error: ErrorFacts | None
    consecutive_failures: int
    larkapps: int  # LarkApps served (from a namespace the app allows)
    refused: int  # LarkApps naming it from elsewhere


class ClusterTokenStatus(Status):
    expiresAt: str | None
    refreshedAt: str | None = None
    nextRefreshAt: str | None = None
    fingerprint: str


class ClusterLarkAppStatus(Status):
    observedGeneration: int
    conditions: list[Condition]
    larkApps: int
    refusedLarkApps: int
    consecutiveFailures: int
    token: ClusterTokenStatus | None = None
    lastError: LastError | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _ready(obs: ClusterObserved, cred: Condition) -> Condition:
    def ready(status: str, reason: str, message: str) -> Condition:
        return Condition(
            type=C.READY,
            status=status,
            reason=reason,
            message=message,
            observedGeneration=obs.generation,
        )

    t = obs.token
    if cred.status != "True" and cred.reason != R.PENDING:
        return ready("False", cred.reason, f"{cred.message} Hint: {hint_for(cred.reason)}")
    if t is None:
        return ready("False", R.PENDING, "Waiting for the app's first token.")
    if t.expires_at <= obs.now:
        message = f"The app's token expired at {rfc3339(t.expires_at)} and was not renewed."
        return ready("False", R.EXPIRED, f"{message} Hint: {hint_for(R.EXPIRED)}")
    message = (
        f"Token valid until {rfc3339(t.expires_at)}; every LarkApp using this app gets it "
        "in its own token Secret."
    )
    return ready("True", R.READY, message)


def build_cluster_status(
    obs: ClusterObserved, previous: Mapping[str, Any] | None
) -> ClusterLarkAppStatus:
    cred = credentials_condition(
        Observed(generation=obs.generation, now=obs.now, credentials=obs.credentials)
    )
    conditions = [_ready(obs, cred), cred]
    conditions += gitops_conditions(conditions, obs.generation)  # Reconciling, Stalled
    carry_transition_times(conditions, previous, rfc3339(obs.now))
    token = None
    if obs.token is not None:
        t = obs.token
        token = ClusterTokenStatus(
            expiresAt=rfc3339(t.expires_at),
            refreshedAt=rfc3339(t.refreshed_at),
            nextRefreshAt=rfc3339(t.next_refresh_at),
            fingerprint=t.fingerprint,
        )
    return ClusterLarkAppStatus(
        observedGeneration=obs.generation,
        conditions=conditions,
        larkApps=obs.larkapps,
        refusedLarkApps=obs.refused,
        consecutiveFailures=obs.consecutive_failures,
        token=token,
        lastError=last_error_status(obs.last_error),
    )
