"""Store apps end to end: the emulator pushes app_tickets (encrypted, signed) over loopback
to the operator's POST /lark/events; the operator keeps the ticket in a Secret, mints the
app token and one token per tenant, renews each in its own window, learns tenants from
app_open and forgets them on app_uninstalled — across restarts, with one resend at most."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from lark_operator.emulator.store import RESEND_PATH
from tests.helpers.wait import eventually
from tests.integration.store.conftest import APP, TICKET_SECRET

pytestmark = pytest.mark.integration
TENANTS = ["tenant-aa", "tenant-bb", "tenant-cc"]


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def resends(env: Any) -> int:
    return int(env.emu.calls().get("apps", {}).get(APP, {}).get(RESEND_PATH, 0))


def test_three_listed_tenants_renewed_cycle_after_cycle_without_a_lapse(store_env: Any) -> None:
    """ttl 80 s, re-issue window 70 s, renewBefore 1m: each token renews ~every 20 s. The
    operator starts after the emulator's first push went nowhere: it asks one resend."""
    env = store_env(TENANTS, token_ttl=80, reissue_window=70)
    env.store_larkapp("shop", {"keys": TENANTS})

    def all_current() -> bool:
        data, current = env.data("shop"), env.current_tokens()
        return (
            bool(data)
            and all(data.get(f"tenant_access_token.{t}") == current.get(t) for t in TENANTS)
            and data.get("app_access_token") == current.get("app")
        )

    eventually(all_current, 40, interval=0.5, what="app token and three tenant tokens")
    assert resends(env) == 1
    data = env.data("shop")
    for t in TENANTS:
        issued = next(x for x in env.emu.tokens(APP)["tokens"] if x["tenant_key"] == t)
        assert abs(_ts(data[f"expires_at.{t}"]) - issued["expires_at"]) <= 1
    status = env.kube.larkapp(env.ns, "shop")["status"]
    assert status["store"]["tenants"] == 3 and status["store"]["tenantsReady"] == 3
    assert status["store"]["tenantsFailing"] == 0 and status["store"]["ticketReceivedAt"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["CredentialsValid"]["reason"] == "Valid"
    ticket = env.kube.secret(env.ns, TICKET_SECRET)
    assert ticket and ticket["app_ticket"].startswith("tk-")
    env.secrets.add(ticket["app_ticket"])

    # Read the Secret as workloads do, for three renewals of every tenant: never a token the
    # platform no longer honours.
    seen: dict[str, set[str]] = {t: set() for t in TENANTS}
    bad: list[str] = []
    deadline = time.monotonic() + 110
    while time.monotonic() < deadline and min(len(s) for s in seen.values()) < 4:
        data = env.data("shop")
        issued = {x["token"]: x for x in env.emu.tokens(APP)["tokens"]}
        for t in TENANTS:
            value = data.get(f"tenant_access_token.{t}")
            tok = issued.get(value or "")
            if tok is None or tok["expires_at"] <= time.time() or tok["tenant_key"] != t:
                bad.append(t)
            elif value:
                seen[t].add(value)
        time.sleep(0.3)
    assert not bad, f"a tenant's token lapsed or was not the platform's: {bad[:5]}"
    assert all(len(s) >= 4 for s in seen.values()), {t: len(s) for t, s in seen.items()}
    assert resends(env) == 1, "a ticket held is never asked for again"
    for values in seen.values():
        env.secrets.update(values)


def test_tenants_all_learned_from_app_open_and_dropped_on_uninstall_across_restarts(
    store_env: Any,
) -> None:
    env = store_env([])
    env.store_larkapp("shop", {"all": True})
    eventually(lambda: env.data("shop").get("app_access_token"), 30, what="app token")
    assert not any(k.startswith("tenant_access_token.") for k in env.data("shop"))

    for tenant in ("tenant-x1", "tenant-x2"):
        assert env.emu.event(APP, "app_open", tenant)["status"] == 200
    start = time.monotonic()
    eventually(
        lambda: (
            {"tenant_access_token.tenant-x1", "tenant_access_token.tenant-x2"}
            <= set(env.data("shop"))
        ),
        10,
        interval=0.2,
        what="tokens of the two tenants that installed the app",
    )
    assert time.monotonic() - start < 10
    assert env.data("shop")["tenant_access_token.tenant-x1"] == env.current_tokens()["tenant-x1"]

    assert env.emu.event(APP, "app_uninstalled", "tenant-x2")["status"] == 200
    eventually(
        lambda: (
            "tenant_access_token.tenant-x2" not in env.data("shop")
            and "expires_at.tenant-x2" not in env.data("shop")
        ),
        10,
        interval=0.2,
        what="the uninstalled tenant's token gone",
    )

    # A restart forgets nothing: tenant-x1 stays, tenant-x2 does not come back, and the
    # next tenant still works.
    env.op.stop()
    calls = env.emu.token_calls(APP)
    env.start_operator()
    assert env.emu.event(APP, "app_open", "tenant-x3")["status"] == 200
    eventually(
        lambda: "tenant_access_token.tenant-x3" in env.data("shop"), 15, what="tenant after restart"
    )
    data = env.data("shop")
    assert "tenant_access_token.tenant-x1" in data and "tenant_access_token.tenant-x2" not in data
    assert env.emu.token_calls(APP) == calls + 1, "only the new tenant's token was fetched"
    # Status follows the Secret (written first, so that status never describes a token
    # workloads cannot read yet): a moment later, not in the same instant.
    eventually(
        lambda: (lambda st: (st.get("tenants"), st.get("tenantsReady")) == (2, 2))(
            (env.kube.larkapp(env.ns, "shop").get("status") or {}).get("store") or {}
        ),
        10,
        interval=0.2,
        what="status counting the two tenants",
    )
    env.secrets.add(env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"])


def test_one_resend_without_a_ticket_and_none_after_a_restart_with_one(store_env: Any) -> None:
    env = store_env(["tenant-r1"], start=False)
    env.store_larkapp("shop", {"keys": ["tenant-r1"]})
    # The emulator's push at its start reached nobody: the operator starts with no ticket.
    eventually(lambda: env.emu.pushes() and env.emu.pushes()[0]["status"] is None, 10)
    env.start_operator()
    eventually(lambda: env.data("shop").get("tenant_access_token.tenant-r1"), 30, what="tokens")
    assert resends(env) == 1
    ticket = env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"]
    env.secrets.add(ticket)

    env.op.stop()
    env.start_operator()
    # A forced refresh needs the ticket: it works with the stored one, and asks no resend.
    calls = env.emu.token_calls(APP)
    env.kube.patch_larkapp(
        env.ns,
        "shop",
        {"metadata": {"annotations": {"larkservice.io/refresh-requested-at": "r1"}}},
    )
    eventually(
        lambda: (
            (env.kube.larkapp(env.ns, "shop")["metadata"].get("annotations") or {}).get(
                "larkservice.io/refresh-handled-at"
            )
            == "r1"
        ),
        20,
        what="the refresh handled",
    )
    assert env.emu.token_calls(APP) >= calls + 1  # the stored ticket minted an app token
    assert resends(env) == 1
    assert env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"] == ticket
