"""Picking up after a restart: what status recorded is where the schedule resumes, so an
operator restart re-issues nothing that is still valid (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lark_operator.reconcile.state import TokenState
from lark_operator.status.facts import Credentials, ErrorFacts
from lark_operator.vocabulary.reasons import ConditionType, Reason
from lark_operator.vocabulary.timefmt import parse_rfc3339


def token_state(status: Mapping[str, Any]) -> TokenState:
    """The TokenState status describes (the tokens themselves come from the Secret)."""
    token = status.get("token") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    cred = conds.get(ConditionType.CREDENTIALS_VALID) or {}
    credentials = None
    if cred.get("reason") and cred.get("reason") != Reason.PENDING:
        credentials = Credentials(_reason(cred["reason"]), cred.get("message", ""))
    failures = int(status.get("consecutiveFailures") or 0)
    err = status.get("lastError")
    last_error = None
    if err and failures:
        last_error = ErrorFacts(
            _reason(err.get("reason", Reason.UNKNOWN_ERROR)),
            err.get("message", ""),
            err.get("code"),
        )
    return TokenState(
        next_refresh_at=parse_rfc3339(token.get("nextRefreshAt")),
        refreshed_at=parse_rfc3339(token.get("refreshedAt")),
        renewed=(conds.get(ConditionType.TOKEN_READY) or {}).get("reason") == Reason.REFRESHED,
        credentials=credentials,
        failures=failures,
        last_error=last_error,
    )


def _reason(word: str) -> Reason:
    try:
        return Reason(word)
    except ValueError:  # written by another version of the operator
        return Reason.UNKNOWN_ERROR
