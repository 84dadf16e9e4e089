"""Events from the difference between two statuses, so that `kubectl describe` reads like a
timeline: transitions only, never one Event per routine refresh or probe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lark_operator.vocabulary.dependencies import DEPENDENCIES
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import ConditionType, EventReason, Reason

C, E, R = ConditionType, EventReason, Reason


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: EventReason
    message: str


def _conds(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (status or {}).get("conditions") or []}


def transitions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[EventSpec]:
    """Events for what changed between two statuses (none when nothing did)."""
    before, after = _conds(old), _conds(new)

    def changed(ctype: str) -> bool:
        a, b = before.get(ctype), after.get(ctype)
        if b is None:
            return False
        return a is None or (a.get("status"), a.get("reason")) != (b.get("status"), b.get("reason"))

    cred, tok = after.get(C.CREDENTIALS_VALID), after.get(C.TOKEN_READY)
    # A new LarkApp's first token (Pending -> Valid and Issued at once) is one Event, not
    # two: a burst of a thousand creations then costs a thousand Event writes, not 2,000.
    first = (
        cred is not None
        and cred["status"] == "True"
        and before.get(C.CREDENTIALS_VALID, {}).get("reason") in (None, R.PENDING)
        and tok is not None
        and tok["reason"] == R.ISSUED
        and changed(C.TOKEN_READY)
    )
    events = _credential_events(cred, changed(C.CREDENTIALS_VALID) and not first)
    err_before = ((old or {}).get("lastError") or {}).get("reason")
    err = new.get("lastError") or {}
    if err.get("reason") == R.RATE_LIMITED and err_before != R.RATE_LIMITED:
        message = f"{err.get('message')} Hint: {hint_for(R.RATE_LIMITED)}"
        events.append(EventSpec("Warning", E.RATE_LIMITED, message))
    if tok and changed(C.TOKEN_READY):
        events += _token_events(tok, before.get(C.TOKEN_READY, {}), new, first)
    rollout = after.get(C.ROLLOUT_RESTART)
    if rollout and changed(C.ROLLOUT_RESTART) and rollout["status"] == "False":
        message = f"{rollout['message']} Hint: {hint_for(rollout['reason'])}"
        events.append(EventSpec("Warning", E.ROLLOUT_RESTART_FAILED, message))
    for dep in DEPENDENCIES:
        c = after.get(dep.condition)
        if not c or not changed(dep.condition) or c["status"] == "Unknown":
            continue
        prev = before.get(dep.condition)
        if c["status"] == "False":
            message = f"{dep.label} {c['reason']}: {c['message']} Hint: {hint_for(c['reason'])}"
            events.append(EventSpec("Warning", E.PROBE_FAILED, message))
        elif prev is not None and prev.get("status") == "False":
            message = f"{dep.label} is healthy again."
            events.append(EventSpec("Normal", E.PROBE_RECOVERED, message))
    return events


def _credential_events(cred: Mapping[str, Any] | None, changed: bool) -> list[EventSpec]:
    if not cred or not changed:
        return []
    if cred["status"] == "True":
        return [
            EventSpec(
                "Normal", E.CREDENTIALS_VALIDATED, "Credentials accepted by the Open Platform."
            )
        ]
    if cred["status"] == "False":
        message = f"{cred['message']} Hint: {hint_for(cred['reason'])}"
        return [EventSpec("Warning", E.CREDENTIALS_INVALID, message)]
    return []


def _token_events(
    tok: Mapping[str, Any], before: Mapping[str, Any], new: Mapping[str, Any], first: bool
) -> list[EventSpec]:
    """Token events follow the TokenReady condition: a routine renewal (Refreshed ->
    Refreshed) shows in status.token and metrics, not as one more Event per cycle."""
    reason = tok["reason"]
    if reason == R.EXPIRED:
        message = f"{tok['message']} Hint: {hint_for(R.EXPIRED)}"
        return [EventSpec("Warning", E.TOKEN_EXPIRED, message)]
    if reason == R.REFRESH_FAILED:
        return [EventSpec("Warning", E.TOKEN_REFRESH_FAILED, tok["message"])]
    if reason == R.SECRET_NOT_OWNED:
        message = f"{tok['message']} Hint: {hint_for(R.SECRET_NOT_OWNED)}"
        return [EventSpec("Warning", E.SECRET_NOT_OWNED, message)]
    if reason == R.TEMPLATE_ERROR:
        message = f"{tok['message']} Hint: {hint_for(R.TEMPLATE_ERROR)}"
        return [EventSpec("Warning", E.TEMPLATE_ERROR, message)]
    if reason == R.REFRESH_CAPACITY_EXCEEDED:
        message = f"{tok['message']} Hint: {hint_for(R.REFRESH_CAPACITY_EXCEEDED)}"
        return [EventSpec("Warning", E.REFRESH_CAPACITY_EXCEEDED, message)]
    if reason == R.ISSUED or (reason == R.REFRESHED and before.get("reason") != R.ISSUED):
        # the first token, or back from a failure; not the routine Issued -> Refreshed
        t = new.get("token") or {}
        message = (
            ("Credentials accepted by the Open Platform. " if first else "")
            + f"Token {t.get('fingerprint')} in Secret {t.get('secretName')}, valid "
            f"until {t.get('expiresAt')}."
        )
        return [EventSpec("Normal", E.TOKEN_REFRESHED, message)]
    return []
