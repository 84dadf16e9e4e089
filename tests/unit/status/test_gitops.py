"""Reconciling and Stalled: computed from the other conditions, never both True."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lark_operator.status import build, gitops
from lark_operator.status.facts import Observed
from lark_operator.status.model import Condition
from lark_operator.vocabulary.hints import HINTS
from lark_operator.vocabulary.reasons import CREDENTIAL_FAILURES, ConditionType
from lark_operator.vocabulary.reasons import STALLED_BY as STALLED
from lark_operator.vocabulary.reasons import Reason as R
from tests.helpers.gitops_cases import CASES, GEN, Case


def build_status(obs: Observed, previous: Any) -> dict[str, Any]:
    return build.build_status(obs, previous).to_dict()


def gitops_conditions(conditions: list[dict[str, Any]], generation: int) -> list[dict[str, Any]]:
    """The typed function on conditions as written (dicts in, dicts out)."""
    typed = [Condition.model_validate(c) for c in conditions]
    return [
        c.model_dump(mode="json", exclude_none=True)
        for c in gitops.gitops_conditions(typed, generation)
    ]


def _by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def _cond(
    ctype: str, status: str, reason: str, message: str = "m", gen: int = GEN
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_build_status_writes_reconciling_and_stalled(case: Case) -> None:
    st = build_status(case.obs, None)
    c = _by_type(st["conditions"])
    rec, stalled = c["Reconciling"], c["Stalled"]
    assert rec["status"] == ("True" if case.reconciling else "False")
    assert stalled["status"] == ("True" if case.stalled else "False")
    if case.stalled:
        assert stalled["reason"] == case.stalled
        assert stalled["message"]  # kstatus reports it with Failed
    for cond in (rec, stalled):
        assert cond["observedGeneration"] == GEN
        assert cond["reason"] and cond["message"]
        assert cond["lastTransitionTime"]


def test_stalled_message_says_what_happened_and_what_to_do() -> None:
    conds = [
        _cond("Ready", "False", "InvalidCredentials", "code 10014 Hint: ..."),
        _cond("CredentialsValid", "False", "InvalidCredentials", "code 10014: app secret invalid"),
    ]
    stalled = _by_type(gitops_conditions(conds, GEN))["Stalled"]
    assert stalled["status"] == "True"
    assert (
        stalled["message"] == f"code 10014: app secret invalid Hint: {HINTS[R.INVALID_CREDENTIALS]}"
    )


@pytest.mark.parametrize(
    ("ctype", "reason"),
    [(ctype, reason) for ctype, reasons in STALLED.items() for reason in sorted(reasons)],
)
def test_every_stalled_reason_stalls_only_while_false(ctype: str, reason: str) -> None:
    ready = _cond("Ready", "False", reason)
    false = _by_type(gitops_conditions([ready, _cond(ctype, "False", reason)], GEN))
    assert (false["Stalled"]["status"], false["Stalled"]["reason"]) == ("True", reason)
    assert false["Reconciling"]["status"] == "False"
    # The same word on a condition that is Unknown (could not tell) is still being worked on.
    unknown = _by_type(gitops_conditions([ready, _cond(ctype, "Unknown", reason)], GEN))
    assert unknown["Stalled"]["status"] == "False"
    assert unknown["Reconciling"]["status"] == "True"


@pytest.mark.parametrize("status", ["Unknown", "False"])
@pytest.mark.parametrize(
    "reason", ["UpstreamUnavailable", "RateLimited", "UnknownError", "TicketMissing", "Pending"]
)
def test_transient_credentials_problems_are_reconciling(reason: str, status: str) -> None:
    conds = [_cond("Ready", "False", reason, "HTTP 503"), _cond("CredentialsValid", status, reason)]
    c = _by_type(gitops_conditions(conds, GEN))
    assert (c["Reconciling"]["status"], c["Reconciling"]["reason"]) == ("True", reason)
    assert c["Reconciling"]["message"] == "HTTP 503"
    assert c["Stalled"]["status"] == "False"


def test_a_stalled_word_on_another_condition_type_does_not_stall() -> None:
    # AppDisabled stalls on CredentialsValid/AppAvailable, not on a probe condition.
    conds = [
        _cond("Ready", "False", "AppDisabled"),
        _cond("PostgresHealthy", "False", "AppDisabled"),
    ]
    assert _by_type(gitops_conditions(conds, GEN))["Stalled"]["status"] == "False"


def test_conditions_of_an_older_generation_are_not_trusted() -> None:
    """The spec changed (a person fixed the appId): until the operator looks again, the old
    refusal must not fail a GitOps sync that carries the fix."""
    old = [
        _cond("Ready", "False", "InvalidCredentials", gen=GEN - 1),
        _cond("CredentialsValid", "False", "InvalidCredentials", gen=GEN - 1),
    ]
    c = _by_type(gitops_conditions(old, GEN))
    assert (c["Reconciling"]["status"], c["Reconciling"]["reason"]) == (
        "True",
        "LatestGenerationNotObserved",
    )
    assert c["Stalled"]["status"] == "False"
    assert f"Generation {GEN}" in c["Reconciling"]["message"]
    # A stale refusal beside a current Ready is ignored too.
    mixed = [_cond("Ready", "False", "Pending"), old[1]]
    assert _by_type(gitops_conditions(mixed, GEN))["Stalled"]["status"] == "False"


def test_without_ready_it_is_reconciling() -> None:
    c = _by_type(gitops_conditions([], GEN))
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"


def test_ready_is_never_stalled() -> None:
    conds = [_cond("Ready", "True", "Ready"), _cond("AppAvailable", "False", "LicenseExpired")]
    c = _by_type(gitops_conditions(conds, GEN))
    assert c["Reconciling"]["status"] == "False" and c["Stalled"]["status"] == "False"


def test_never_both_true() -> None:
    statuses = ("True", "False", "Unknown")
    reasons = ("Pending", "Suspended", "InvalidCredentials", "SecretNotOwned", "Unreachable")
    for r, cv, tok, reason in itertools.product(statuses, statuses, statuses, reasons):
        conds = [
            _cond("Ready", r, reason),
            _cond("CredentialsValid", cv, reason),
            _cond("TokenReady", tok, reason),
        ]
        out = gitops_conditions(conds, GEN)
        assert [c["type"] for c in out] == ["Reconciling", "Stalled"]
        assert not all(c["status"] == "True" for c in out), conds


def test_every_refusal_of_the_credentials_stalls() -> None:
    """status.py sets CredentialsValid=False exactly for CREDENTIAL_FAILURES: each of them
    needs a person, so each is in the Stalled set (and the Argo CD health check may treat
    CredentialsValid=False as Degraded)."""
    assert CREDENTIAL_FAILURES <= STALLED[ConditionType.CREDENTIALS_VALID]
