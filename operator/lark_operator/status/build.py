"""`build_status`: the only place a LarkApp status is put together, from observed facts.

The reconciler feeds it facts and writes the result only when it differs from what was last
written; lastTransitionTime is carried over from the previous status for every condition
whose status did not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lark_operator.status.facts import ErrorFacts, Observed
from lark_operator.status.gitops import gitops_conditions
from lark_operator.status.model import (
    Condition,
    LarkAppStatus,
    LastError,
    StoreStatus,
    TokenStatus,
)
from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import CREDENTIAL_FAILURES, ConditionType, Phase, Reason
from lark_operator.vocabulary.timefmt import rfc3339

C, R = ConditionType, Reason  # short names for the tables below
# TokenReady reasons that make a LarkApp without a credentials problem fail or degrade.
_TOKEN_PROBLEMS = frozenset(
    {R.EXPIRED, R.REFRESH_FAILED, R.SECRET_NOT_OWNED, R.TEMPLATE_ERROR, R.REFRESH_CAPACITY_EXCEEDED}
)
# lastError reasons that say the target does not get the token, whatever token is held.
_TARGET_REFUSED = frozenset({R.SECRET_NOT_OWNED, R.TEMPLATE_ERROR})


def _condition(ctype: ConditionType, status: str, reason: str, message: str, g: int) -> Condition:
    return Condition(
        type=ctype, status=status, reason=reason, message=message, observedGeneration=g
    )


def credentials_condition(obs: Observed) -> Condition:
    c, g = obs.credentials, obs.generation
    if c is None:
        return _condition(
            C.CREDENTIALS_VALID, "Unknown", R.PENDING, "Credentials not checked yet.", g
        )
    if c.reason == R.VALID:
        return _condition(C.CREDENTIALS_VALID, "True", R.VALID, c.message, g)
    status = "False" if c.reason in CREDENTIAL_FAILURES else "Unknown"
    return _condition(C.CREDENTIALS_VALID, status, c.reason, c.message, g)


def _token_condition(obs: Observed) -> Condition:
    t, g, err = obs.token, obs.generation, obs.last_error
    if err is not None and err.reason in _TARGET_REFUSED:
        # Whatever token is held, the target named in the spec does not get it.
        return _condition(C.TOKEN_READY, "False", err.reason, err.message, g)
    if t is not None and t.expires_at <= obs.now:
        message = f"The token in Secret {t.secret_name} expired at {rfc3339(t.expires_at)}."
        return _condition(C.TOKEN_READY, "False", R.EXPIRED, message, g)
    if obs.suspended:
        status = "True" if t is not None else "Unknown"
        message = "Refreshing is suspended (spec.suspend)."
        return _condition(C.TOKEN_READY, status, R.SUSPENDED, message, g)
    if t is None:
        if err is not None:
            message = f"No token yet: {err.message}"
            return _condition(C.TOKEN_READY, "False", R.REFRESH_FAILED, message, g)
        return _condition(C.TOKEN_READY, "Unknown", R.PENDING, "Waiting for the first token.", g)
    if err is not None:
        message = (
            f"Last refresh failed ({err.reason}); the current token stays valid until "
            f"{rfc3339(t.expires_at)}."
        )
        return _condition(C.TOKEN_READY, "True", R.REFRESH_FAILED, message, g)
    if t.at_risk is not None:
        message = (
            f"Token in Secret {t.secret_name} is valid until {rfc3339(t.expires_at)}, but the "
            "operator is refreshing more tokens than it can: at its measured capacity this "
            f"one's refresh is projected for {rfc3339(t.at_risk)}, after it expires."
        )
        return _condition(C.TOKEN_READY, "True", R.REFRESH_CAPACITY_EXCEEDED, message, g)
    message = f"Token in Secret {t.secret_name}, valid until {rfc3339(t.expires_at)}."
    return _condition(C.TOKEN_READY, "True", R.REFRESHED if t.renewed else R.ISSUED, message, g)


def _probe_condition(dep: str, ctype: ConditionType, obs: Observed) -> Condition:
    entry = obs.probes.get(dep)
    if entry is None:
        return _condition(ctype, "Unknown", R.PENDING, "Not probed yet.", obs.generation)
    status = "True" if entry.get("healthy") else "False"
    reason = str(entry.get("reason", R.UNKNOWN))
    return _condition(ctype, status, reason, str(entry.get("message", "")), obs.generation)


def _phase_and_ready(
    obs: Observed, deps: list[Dependency], conds: Mapping[ConditionType, Condition]
) -> tuple[Phase, Condition]:
    g = obs.generation
    if obs.suspended:
        message = "Suspended (spec.suspend): nothing is refreshed or probed."
        return Phase.SUSPENDED, _condition(C.READY, "False", R.SUSPENDED, message, g)
    problems: list[tuple[str, str]] = []
    cred, tok = conds[C.CREDENTIALS_VALID], conds[C.TOKEN_READY]
    if cred.status != "True" and cred.reason != R.PENDING:
        problems.append((cred.reason, cred.message))
    if tok.reason in _TOKEN_PROBLEMS and not problems:
        problems.append((tok.reason, tok.message))
    available = conds.get(C.APP_AVAILABLE)
    if available is not None and available.status == "False":
        problems.append((available.reason, available.message))
    for dep in deps:
        c = conds[dep.condition]
        if c.status == "False":
            problems.append((c.reason, f"{dep.label}: {c.message}"))
    rollout = conds.get(C.ROLLOUT_RESTART)
    if rollout is not None and rollout.status == "False":
        problems.append((rollout.reason, rollout.message))
    if tok.status != "True":
        if problems:
            reason, message = problems[0]
            ready = _condition(C.READY, "False", reason, f"{message} Hint: {hint_for(reason)}", g)
            return Phase.FAILED, ready
        message = "Waiting for the first token."
        return Phase.PENDING, _condition(C.READY, "False", R.PENDING, message, g)
    if problems:
        reason, message = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"{message}{more} Hint: {hint_for(reason)}"
        return Phase.DEGRADED, _condition(C.READY, "False", reason, message, g)
    waiting = [d.label for d in deps if conds[d.condition].status == "Unknown"]
    if waiting:  # Ready means known good: not before every configured probe has answered
        message = f"Waiting for the first probe of {', '.join(waiting)}."
        return Phase.PENDING, _condition(C.READY, "False", R.PENDING, message, g)
    message = "Token is fresh and every configured dependency is healthy."
    return Phase.READY, _condition(C.READY, "True", R.READY, message, g)


def build_status(obs: Observed, previous: Mapping[str, Any] | None) -> LarkAppStatus:
    """The whole status subresource for these facts."""
    conds: dict[ConditionType, Condition] = {
        C.CREDENTIALS_VALID: credentials_condition(obs),
        C.TOKEN_READY: _token_condition(obs),
    }
    if obs.availability is not None:
        a = obs.availability
        conds[C.APP_AVAILABLE] = _condition(
            C.APP_AVAILABLE, a.status, a.reason, a.message, obs.generation
        )
    deps = [Dependency(d) for d in obs.configured_probes]
    for dep in deps:
        conds[dep.condition] = _probe_condition(dep, dep.condition, obs)
    if obs.rollout is not None:
        conds[C.ROLLOUT_RESTART] = _condition(C.ROLLOUT_RESTART, *obs.rollout, obs.generation)
    phase, ready = _phase_and_ready(obs, deps, conds)
    ordered = [ready, *conds.values()]
    ordered += gitops_conditions(ordered, obs.generation)  # Reconciling, Stalled
    carry_transition_times(ordered, previous, rfc3339(obs.now))

    token = None
    if obs.token is not None:
        t = obs.token
        token = TokenStatus(
            secretName=t.secret_name,
            expiresAt=rfc3339(t.expires_at),
            refreshedAt=rfc3339(t.refreshed_at),
            fingerprint=t.fingerprint,
            nextRefreshAt=None if obs.suspended else rfc3339(t.next_refresh_at),
        )
    probes = {str(d): dict(obs.probes[d]) for d in deps if d in obs.probes}
    store = None
    if obs.store is not None:
        st = obs.store
        store = StoreStatus(
            ticketReceivedAt=rfc3339(st.ticket_received_at),
            tenants=st.tenants,
            tenantsReady=st.ready,
            tenantsFailing=st.failing,
            earliestTenantExpiresAt=rfc3339(st.earliest_tenant_expiry),
        )
    return LarkAppStatus(
        observedGeneration=obs.generation,
        phase=phase,
        conditions=ordered,
        consecutiveFailures=obs.consecutive_failures,
        token=token,
        probes=probes if obs.probes else None,
        lastError=last_error_status(obs.last_error),
        store=store,
    )


def last_error_status(e: ErrorFacts | None) -> LastError | None:
    if e is None:
        return None
    return LastError(
        reason=e.reason, message=e.message, hint=hint_for(e.reason), code=e.code, at=rfc3339(e.at)
    )


def carry_transition_times(
    conditions: list[Condition], previous: Mapping[str, Any] | None, now: str | None
) -> None:
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    for c in conditions:
        prev = old.get(c.type)
        same = prev is not None and prev.get("status") == c.status
        c.lastTransitionTime = prev.get("lastTransitionTime", now) if same and prev else now
