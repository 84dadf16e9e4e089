"""Pure status functions: conditions, phase, transitions."""

from __future__ import annotations

from typing import Any

from lark_operator.status import build
from lark_operator.status.events import transitions
from lark_operator.status.facts import Credentials, ErrorFacts, Observed, TokenFacts
from lark_operator.status.model import status_patch
from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.reasons import Reason as R


def build_status(obs: Observed, previous: Any) -> dict[str, Any]:
    """The status as written (the builder returns the typed model)."""
    return build.build_status(obs, previous).to_dict()


NOW = 1_800_000_000.0
TOKEN = TokenFacts("app-lark-token", NOW + 3600, NOW - 100, NOW + 3000, "sha256:abc", False)


def _conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_ready_when_token_and_credentials_good() -> None:
    st = build_status(Observed(1, NOW, credentials=Credentials(R.VALID, "ok"), token=TOKEN), None)
    assert st["phase"] == "Ready"
    c = _conds(st)
    assert c["Ready"]["status"] == "True"
    assert c["TokenReady"]["reason"] == "Issued"
    assert st["token"]["nextRefreshAt"]
    assert "probes" not in st and "lastError" not in st


def test_probe_failure_degrades_with_reason_and_hint() -> None:
    entry = {"healthy": False, "reason": "Unreachable", "message": "refused", "details": {}}
    st = build_status(
        Observed(
            1,
            NOW,
            credentials=Credentials(R.VALID, "ok"),
            token=TOKEN,
            configured_probes=(Dependency.POSTGRES,),
            probes={"postgres": entry},
        ),
        None,
    )
    c = _conds(st)
    assert st["phase"] == "Degraded"
    assert c["Ready"]["reason"] == "Unreachable"
    assert "Hint:" in c["Ready"]["message"]
    assert c["PostgresHealthy"]["status"] == "False"
    assert "RedisHealthy" not in c  # not configured: no condition


def test_refresh_failure_keeps_token_ready_true_until_expiry() -> None:
    err = ErrorFacts(R.UPSTREAM_UNAVAILABLE, "HTTP 503", None, NOW)
    obs = Observed(
        1,
        NOW,
        credentials=Credentials(R.VALID, "ok"),
        token=TOKEN,
        last_error=err,
        consecutive_failures=2,
    )
    c = _conds(build_status(obs, None))
    assert (c["TokenReady"]["status"], c["TokenReady"]["reason"]) == ("True", "RefreshFailed")
    expired = Observed(
        1, TOKEN.expires_at + 1, credentials=Credentials(R.VALID, "ok"), token=TOKEN, last_error=err
    )
    st = build_status(expired, None)
    assert _conds(st)["TokenReady"]["reason"] == "Expired"
    assert st["phase"] == "Failed"


def test_transition_time_is_kept_while_status_unchanged() -> None:
    first = build_status(
        Observed(1, NOW, credentials=Credentials(R.VALID, "ok"), token=TOKEN), None
    )
    later = build_status(
        Observed(1, NOW + 500, credentials=Credentials(R.VALID, "ok"), token=TOKEN), first
    )
    assert later == first
    assert status_patch(later, first) is None


def test_transitions_emit_events_once() -> None:
    bad = build_status(
        Observed(
            1,
            NOW,
            credentials=Credentials(R.INVALID_CREDENTIALS, "10014"),
            last_error=ErrorFacts(R.INVALID_CREDENTIALS, "10014", 10014),
        ),
        None,
    )
    evs = transitions(None, bad)
    assert [e.reason for e in evs] == ["CredentialsInvalid", "TokenRefreshFailed"]
    assert transitions(bad, bad) == []
    good = build_status(Observed(1, NOW, credentials=Credentials(R.VALID, "ok"), token=TOKEN), bad)
    assert [e.reason for e in transitions(bad, good)] == ["CredentialsValidated", "TokenRefreshed"]


def test_patch_nulls_removed_keys() -> None:
    assert status_patch({"a": 1}, {"a": 1, "lastError": {"x": 1}}) == {"a": 1, "lastError": None}


def test_first_token_of_a_new_larkapp_is_one_event() -> None:
    pending = build_status(Observed(1, NOW), None)
    good = build_status(
        Observed(1, NOW, credentials=Credentials(R.VALID, "ok"), token=TOKEN), pending
    )
    for old in (None, pending):
        evs = transitions(old, good)
        assert [e.reason for e in evs] == ["TokenRefreshed"]
        assert evs[0].message.startswith("Credentials accepted by the Open Platform. Token ")
