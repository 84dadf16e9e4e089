"""Status of a store app and of app availability, from facts: TicketMissing with its hint
about the event URL, status.store as counts, AppAvailable False degrading and stalling,
Unknown (no bot capability) not."""

from __future__ import annotations

from lark_operator.reconcile.availability import from_bot
from lark_operator.status.build import build_status
from lark_operator.status.facts import AvailabilityFacts, Credentials, Observed, StoreFacts
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import Reason
from tests.unit.status.test_build import NOW, TOKEN, _conds

VALID = Credentials(Reason.VALID, "ok")


def test_ticket_missing_is_unknown_credentials_with_the_event_url_hint() -> None:
    obs = Observed(
        1,
        NOW,
        credentials=Credentials(Reason.TICKET_MISSING, "No app_ticket has arrived yet"),
        store=StoreFacts(None, 3, 0, 0, None),
    )
    st = build_status(obs, None).to_dict()
    c = _conds(st)
    assert (c["CredentialsValid"]["status"], c["CredentialsValid"]["reason"]) == (
        "Unknown",
        "TicketMissing",
    )
    assert c["Ready"]["reason"] == "TicketMissing" and "/lark/events" in c["Ready"]["message"]
    assert "/lark/events" in hint_for(Reason.TICKET_MISSING)
    assert c["Stalled"]["status"] == "False"  # it resolves itself once a ticket comes
    assert st["store"] == {"tenants": 3, "tenantsReady": 0, "tenantsFailing": 0}


def test_store_summary_counts_and_worst_expiry() -> None:
    obs = Observed(
        1, NOW, credentials=VALID, token=TOKEN, store=StoreFacts(NOW - 60, 5, 4, 1, NOW + 900)
    )
    store = build_status(obs, None).to_dict()["store"]
    assert store["tenants"] == 5 and store["tenantsReady"] == 4 and store["tenantsFailing"] == 1
    assert store["ticketReceivedAt"] and store["earliestTenantExpiresAt"]


def test_app_disabled_degrades_and_stalls_unknown_does_not() -> None:
    for status, reason in ((1, "AppDisabled"), (5, "LicenseExpired"), (6, "PlanExpired")):
        facts = from_bot({"activate_status": status}, "cli_a")
        assert (facts.status, facts.reason) == ("False", reason)
        assert f"activate_status {status}" in facts.message
        st = build_status(
            Observed(1, NOW, credentials=VALID, token=TOKEN, availability=facts), None
        )
        c = _conds(st.to_dict())
        assert c["AppAvailable"]["status"] == "False" and c["Ready"]["reason"] == reason
        assert st.phase == "Degraded" and c["Stalled"]["status"] == "True"
    odd = from_bot({"activate_status": 4}, "cli_a")
    assert (odd.status, odd.reason) == ("False", "Unknown") and "4" in odd.message
    unknown = AvailabilityFacts("Unknown", Reason.UNKNOWN, "no bot capability")
    st = build_status(Observed(1, NOW, credentials=VALID, token=TOKEN, availability=unknown), None)
    assert st.phase == "Ready" and _conds(st.to_dict())["AppAvailable"]["status"] == "Unknown"
    ok = from_bot({"activate_status": 2, "ip_white_list": ["1.2.3.4"]}, "cli_a")
    assert (ok.status, ok.reason, ok.activate_status) == ("True", "Available", 2)
