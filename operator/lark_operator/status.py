"""LarkApp status, computed by pure functions from what the operator observed.

`build_status` is the only place a status is put together; the controller feeds it facts
and writes the result only when it differs from what was last written. `transitions`
turns two statuses into the Events that make `kubectl describe` read like a timeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lark_operator.gitops_conditions import gitops_conditions
from lark_operator.hints import hint_for

DEPENDENCIES = ("postgres", "redis", "rabbitmq")
CONDITION_FOR = {
    "postgres": "PostgresHealthy",
    "redis": "RedisHealthy",
    "rabbitmq": "RabbitMQHealthy",
}
LABEL_FOR = {"postgres": "PostgreSQL", "redis": "Redis", "rabbitmq": "RabbitMQ"}

# CredentialsValid reasons that say the credentials/config are wrong (vs. "could not tell").
CREDENTIAL_FAILURES = frozenset(
    {
        "InvalidCredentials",
        "SecretNotFound",
        "SecretKeyMissing",
        "IPDenied",
        "AppDisabled",
        "ScopeMissing",
        "QuotaExceeded",
        "DomainNotAllowed",
    }
)


# Every reason the CredentialsValid condition may carry.
CREDENTIALS_REASONS = CREDENTIAL_FAILURES | {
    "Valid",
    "RateLimited",
    "UpstreamUnavailable",
    "UnknownError",
}


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Credentials:
    """What is known about the credentials: reason from the fixed vocabulary."""

    reason: str  # Valid | a CREDENTIAL_FAILURES word | RateLimited | UpstreamUnavailable | ...
    message: str


@dataclass(frozen=True)
class TokenFacts:
    secret_name: str
    expires_at: float
    refreshed_at: float
    next_refresh_at: float | None
    fingerprint: str
    refreshed_before: bool  # a token was replaced at least once (Refreshed vs Issued)


@dataclass(frozen=True)
class ErrorFacts:
    reason: str
    message: str
    code: int | None = None
    at: float | None = None


@dataclass(frozen=True)
class Observed:
    generation: int
    now: float
    suspended: bool = False
    credentials: Credentials | None = None
    token: TokenFacts | None = None
    last_error: ErrorFacts | None = None
    consecutive_failures: int = 0
    configured_probes: tuple[str, ...] = ()
    # dependency -> the status.probes entry last decided to be written (see probe_entry)
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def probe_entry(result: Any) -> dict[str, Any]:
    """status.probes.<dep> from a probes.ProbeResult-like object."""
    entry: dict[str, Any] = {
        "healthy": bool(result.healthy),
        "reason": result.reason,
        "checkedAt": rfc3339(result.checked_at),
        "message": result.message,
        "details": {str(k): str(v) for k, v in (result.details or {}).items()},
    }
    if result.latency_ms is not None:
        entry["latencyMs"] = round(float(result.latency_ms), 2)
    return entry


def _condition(
    ctype: str, status: str, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _credentials_condition(obs: Observed) -> dict[str, Any]:
    c = obs.credentials
    if c is None:
        return _condition(
            "CredentialsValid", "Unknown", "Pending", "Credentials not checked yet.", obs.generation
        )
    if c.reason == "Valid":
        return _condition("CredentialsValid", "True", "Valid", c.message, obs.generation)
    status = "False" if c.reason in CREDENTIAL_FAILURES else "Unknown"
    return _condition("CredentialsValid", status, c.reason, c.message, obs.generation)


def _token_condition(obs: Observed) -> dict[str, Any]:
    t, g = obs.token, obs.generation
    if obs.last_error is not None and obs.last_error.reason == "SecretNotOwned":
        # Whatever token is held, the target named in the spec does not get it.
        return _condition("TokenReady", "False", "SecretNotOwned", obs.last_error.message, g)
    if t is not None and t.expires_at <= obs.now:
        return _condition(
            "TokenReady",
            "False",
            "Expired",
            f"The token in Secret {t.secret_name} expired at {rfc3339(t.expires_at)}.",
            g,
        )
    if obs.suspended:
        status = "True" if t is not None else "Unknown"
        return _condition(
            "TokenReady", status, "Suspended", "Refreshing is suspended (spec.suspend).", g
        )
    if t is None:
        if obs.last_error is not None:
            return _condition(
                "TokenReady", "False", "RefreshFailed", f"No token yet: {obs.last_error.message}", g
            )
        return _condition("TokenReady", "Unknown", "Pending", "Waiting for the first token.", g)
    if obs.last_error is not None:
        return _condition(
            "TokenReady",
            "True",
            "RefreshFailed",
            f"Last refresh failed ({obs.last_error.reason}); the current token "
            f"stays valid until {rfc3339(t.expires_at)}.",
            g,
        )
    reason = "Refreshed" if t.refreshed_before else "Issued"
    return _condition(
        "TokenReady",
        "True",
        reason,
        f"Token in Secret {t.secret_name}, valid until {rfc3339(t.expires_at)}.",
        g,
    )


def _probe_condition(dep: str, obs: Observed) -> dict[str, Any]:
    ctype, entry = CONDITION_FOR[dep], obs.probes.get(dep)
    if entry is None:
        return _condition(ctype, "Unknown", "Pending", "Not probed yet.", obs.generation)
    status = "True" if entry.get("healthy") else "False"
    return _condition(
        ctype,
        status,
        str(entry.get("reason", "Unknown")),
        str(entry.get("message", "")),
        obs.generation,
    )


def _phase_and_ready(obs: Observed, conds: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    g = obs.generation
    token_ok = conds["TokenReady"]["status"] == "True"
    if obs.suspended:
        return "Suspended", _condition(
            "Ready",
            "False",
            "Suspended",
            "Suspended (spec.suspend): nothing is refreshed or probed.",
            g,
        )
    problems: list[tuple[str, str]] = []
    cred = conds["CredentialsValid"]
    if cred["status"] != "True" and cred["reason"] != "Pending":
        problems.append((cred["reason"], cred["message"]))
    tok = conds["TokenReady"]
    if tok["reason"] in ("Expired", "RefreshFailed", "SecretNotOwned") and not problems:
        problems.append((tok["reason"], tok["message"]))
    for dep in obs.configured_probes:
        c = conds[CONDITION_FOR[dep]]
        if c["status"] == "False":
            problems.append((c["reason"], f"{LABEL_FOR[dep]}: {c['message']}"))
    if not token_ok:
        if problems:
            reason, message = problems[0]
            return "Failed", _condition(
                "Ready", "False", reason, f"{message} Hint: {hint_for(reason)}", g
            )
        return "Pending", _condition("Ready", "False", "Pending", "Waiting for the first token.", g)
    if problems:
        reason, message = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return "Degraded", _condition(
            "Ready", "False", reason, f"{message}{more} Hint: {hint_for(reason)}", g
        )
    waiting = [
        LABEL_FOR[d]
        for d in obs.configured_probes
        if conds[CONDITION_FOR[d]]["status"] == "Unknown"
    ]
    if waiting:  # Ready means known good: not before every configured probe has answered
        return "Pending", _condition(
            "Ready", "False", "Pending", f"Waiting for the first probe of {', '.join(waiting)}.", g
        )
    return "Ready", _condition(
        "Ready", "True", "Ready", "Token is fresh and every configured dependency is healthy.", g
    )


def build_status(obs: Observed, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The whole status subresource for these facts; lastTransitionTime carried over from
    `previous` for every condition whose status did not change."""
    previous = previous or {}
    conds: dict[str, dict[str, Any]] = {
        "CredentialsValid": _credentials_condition(obs),
        "TokenReady": _token_condition(obs),
    }
    for dep in obs.configured_probes:
        conds[CONDITION_FOR[dep]] = _probe_condition(dep, obs)
    phase, ready = _phase_and_ready(obs, conds)
    ordered = [ready, *conds.values()]
    ordered += gitops_conditions(ordered, obs.generation)  # Reconciling, Stalled

    old = {c.get("type"): c for c in previous.get("conditions") or []}
    now = rfc3339(obs.now)
    for c in ordered:
        prev = old.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"]
        c["lastTransitionTime"] = prev.get("lastTransitionTime", now) if same and prev else now

    status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "phase": phase,
        "conditions": ordered,
        "consecutiveFailures": obs.consecutive_failures,
    }
    if obs.token is not None:
        t = obs.token
        token: dict[str, Any] = {
            "secretName": t.secret_name,
            "expiresAt": rfc3339(t.expires_at),
            "refreshedAt": rfc3339(t.refreshed_at),
            "fingerprint": t.fingerprint,
        }
        if t.next_refresh_at is not None and not obs.suspended:
            token["nextRefreshAt"] = rfc3339(t.next_refresh_at)
        status["token"] = token
    if obs.probes:
        status["probes"] = {
            d: dict(obs.probes[d]) for d in obs.configured_probes if d in obs.probes
        }
    if obs.last_error is not None:
        e = obs.last_error
        err: dict[str, Any] = {"reason": e.reason, "message": e.message, "hint": hint_for(e.reason)}
        if e.code is not None:
            err["code"] = e.code
        if e.at is not None:
            err["at"] = rfc3339(e.at)
        status["lastError"] = err
    return status


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


# --- Events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


def _conds(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (status or {}).get("conditions") or []}


def transitions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[EventSpec]:
    """Events for what changed between two statuses (none when nothing did)."""
    before, after = _conds(old), _conds(new)
    events: list[EventSpec] = []

    def changed(ctype: str) -> bool:
        a, b = before.get(ctype), after.get(ctype)
        if b is None:
            return False
        return a is None or (a.get("status"), a.get("reason")) != (b.get("status"), b.get("reason"))

    cred = after.get("CredentialsValid")
    tok = after.get("TokenReady")
    # A new LarkApp's first token (Pending -> Valid and Issued at once) is one Event, not
    # two: a burst of a thousand creations then costs a thousand Event writes, not 2,000.
    first = (
        cred is not None
        and cred["status"] == "True"
        and before.get("CredentialsValid", {}).get("reason") in (None, "Pending")
        and tok is not None
        and tok["reason"] == "Issued"
        and changed("TokenReady")
    )
    if cred and changed("CredentialsValid") and not first:
        if cred["status"] == "True":
            events.append(
                EventSpec(
                    "Normal", "CredentialsValidated", "Credentials accepted by the Open Platform."
                )
            )
        elif cred["status"] == "False":
            events.append(
                EventSpec(
                    "Warning",
                    "CredentialsInvalid",
                    f"{cred['message']} Hint: {hint_for(cred['reason'])}",
                )
            )

    err_before = ((old or {}).get("lastError") or {}).get("reason")
    err = new.get("lastError") or {}
    if err.get("reason") == "RateLimited" and err_before != "RateLimited":
        events.append(
            EventSpec(
                "Warning", "RateLimited", f"{err.get('message')} Hint: {hint_for('RateLimited')}"
            )
        )

    # Token events follow the TokenReady condition: a routine renewal (Refreshed ->
    # Refreshed) shows in status.token and metrics, not as one more Event per cycle.
    if tok and changed("TokenReady"):
        if tok["reason"] == "Expired":
            events.append(
                EventSpec(
                    "Warning", "TokenExpired", f"{tok['message']} Hint: {hint_for('Expired')}"
                )
            )
        elif tok["reason"] == "RefreshFailed":
            events.append(EventSpec("Warning", "TokenRefreshFailed", tok["message"]))
        elif tok["reason"] == "SecretNotOwned":
            events.append(
                EventSpec(
                    "Warning",
                    "SecretNotOwned",
                    f"{tok['message']} Hint: {hint_for('SecretNotOwned')}",
                )
            )
        elif tok["reason"] == "Issued" or (
            tok["reason"] == "Refreshed" and before.get("TokenReady", {}).get("reason") != "Issued"
        ):  # first token, or back from a failure; not the routine Issued -> Refreshed
            t = new.get("token") or {}
            events.append(
                EventSpec(
                    "Normal",
                    "TokenRefreshed",
                    ("Credentials accepted by the Open Platform. " if first else "")
                    + f"Token {t.get('fingerprint')} in Secret {t.get('secretName')}, valid "
                    f"until {t.get('expiresAt')}.",
                )
            )

    for dep, ctype in CONDITION_FOR.items():
        c = after.get(ctype)
        if not c or not changed(ctype) or c["status"] == "Unknown":
            continue
        prev = before.get(ctype)
        if c["status"] == "False":
            events.append(
                EventSpec(
                    "Warning",
                    "ProbeFailed",
                    f"{LABEL_FOR[dep]} {c['reason']}: {c['message']} Hint: {hint_for(c['reason'])}",
                )
            )
        elif prev is not None and prev.get("status") == "False":
            events.append(
                EventSpec("Normal", "ProbeRecovered", f"{LABEL_FOR[dep]} is healthy again.")
            )
    return events
