"""Status of what this issue added: a ClusterLarkApp's status, a template that does not
render (TemplateError, Stalled, the old token still described), a LarkApp refused a
ClusterLarkApp (NotAllowed, Stalled) and a rollout that cannot be done (Degraded)."""

from __future__ import annotations

from typing import Any

from lark_operator.status.build import build_status
from lark_operator.status.cluster import ClusterObserved, ClusterTokenFacts, build_cluster_status
from lark_operator.status.events import transitions
from lark_operator.status.facts import Credentials, ErrorFacts, Observed, TokenFacts
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import Reason as R

NOW = 1_800_000_000.0
TOKEN = TokenFacts("app-lark-token", NOW + 3600, NOW - 100, NOW + 3000, "sha256:abc", False)
VALID = Credentials(R("Valid"), "App cli_x authenticated.")


def _conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def _cluster(**kw: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "generation": 2,
        "now": NOW,
        "credentials": VALID,
        "token": ClusterTokenFacts(NOW + 3600, NOW - 100, NOW + 3000, "sha256:abc"),
        "last_error": None,
        "consecutive_failures": 0,
        "larkapps": 3,
        "refused": 1,
    }
    facts.update(kw)
    return build_cluster_status(ClusterObserved(**facts), None).to_dict()


def test_cluster_larkapp_status() -> None:
    st = _cluster()
    c = _conds(st)
    assert [x["type"] for x in st["conditions"]] == [
        "Ready",
        "CredentialsValid",
        "Reconciling",
        "Stalled",
    ]
    assert (c["Ready"]["status"], c["Stalled"]["status"], c["Reconciling"]["status"]) == (
        "True",
        "False",
        "False",
    )
    assert st["token"]["fingerprint"] == "sha256:abc" and st["token"]["nextRefreshAt"]
    assert (st["larkApps"], st["refusedLarkApps"], st["observedGeneration"]) == (3, 1, 2)

    gone = _cluster(
        credentials=Credentials(R("SecretNotFound"), "Secret app not found in namespace lark."),
        last_error=ErrorFacts(R("SecretNotFound"), "Secret app not found in namespace lark."),
        consecutive_failures=2,
    )
    c = _conds(gone)
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "SecretNotFound")
    assert c["Ready"]["message"].endswith(hint_for("SecretNotFound"))
    assert c["Stalled"]["status"] == "True"
    assert gone["lastError"]["hint"] == hint_for("SecretNotFound")
    reasons = [e.reason for e in transitions(_cluster(), gone)]
    assert reasons == ["CredentialsInvalid"]

    expired = _cluster(token=ClusterTokenFacts(NOW - 1, NOW - 7200, None, "sha256:abc"))
    assert _conds(expired)["Ready"]["reason"] == "Expired"
    pending = _cluster(token=None, credentials=None)
    assert _conds(pending)["Ready"]["reason"] == "Pending"
    assert _conds(pending)["Reconciling"]["status"] == "True"


def test_template_error_stalls_and_still_describes_the_token_held() -> None:
    err = ErrorFacts(R("TemplateError"), "spec.target.template.data['auth']: bad", None, NOW)
    good = build_status(Observed(1, NOW, credentials=VALID, token=TOKEN), None).to_dict()
    st = build_status(
        Observed(1, NOW, credentials=VALID, token=TOKEN, last_error=err), good
    ).to_dict()
    c = _conds(st)
    assert (c["TokenReady"]["status"], c["TokenReady"]["reason"]) == ("False", "TemplateError")
    assert "'auth'" in c["TokenReady"]["message"]
    assert (c["Stalled"]["status"], c["Stalled"]["reason"]) == ("True", "TemplateError")
    assert st["phase"] == "Failed" and st["token"]["fingerprint"] == "sha256:abc"
    assert [e.reason for e in transitions(good, st)] == ["TemplateError"]


def test_not_allowed_stalls() -> None:
    message = "ClusterLarkApp 'shared' does not exist or does not allow namespace 'x'."
    st = build_status(
        Observed(
            1,
            NOW,
            credentials=Credentials(R("NotAllowed"), message),
            last_error=ErrorFacts(R("NotAllowed"), message, None, NOW),
            consecutive_failures=1,
        ),
        None,
    ).to_dict()
    c = _conds(st)
    assert (c["CredentialsValid"]["status"], c["CredentialsValid"]["reason"]) == (
        "False",
        "NotAllowed",
    )
    assert (c["Stalled"]["status"], c["Stalled"]["reason"]) == ("True", "NotAllowed")
    assert "token" not in st


def test_rollout_condition_degrades_and_says_so_once() -> None:
    ok = ("True", "Enabled", "Deployment/api roll within ...")
    missing = ("False", "WorkloadNotFound", "Deployment api not found in namespace ns.")
    good = build_status(Observed(1, NOW, credentials=VALID, token=TOKEN, rollout=ok), None)
    bad = build_status(Observed(1, NOW, credentials=VALID, token=TOKEN, rollout=missing), None)
    g, b = good.to_dict(), bad.to_dict()
    assert _conds(g)["RolloutRestart"]["status"] == "True" and g["phase"] == "Ready"
    assert b["phase"] == "Degraded"
    assert _conds(b)["Ready"]["reason"] == "WorkloadNotFound"
    assert _conds(b)["Stalled"]["status"] == "False"  # a person may create it yet
    assert [e.reason for e in transitions(g, b)] == ["RolloutRestartFailed"]
    assert transitions(b, b) == []
    none = build_status(Observed(1, NOW, credentials=VALID, token=TOKEN), None).to_dict()
    assert "RolloutRestart" not in _conds(none)
