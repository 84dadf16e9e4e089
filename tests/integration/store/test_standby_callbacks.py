"""A callback that reaches a standby replica (with leader election the events Service routes
to every replica): the standby verifies it and stores its effect in the ticket Secret; the
leader, watching those Secrets, acts on it. Here the emulator pushes only to the standby."""

from __future__ import annotations

from typing import Any

import pytest

from lark_devenv.controlplane import free_port
from tests.helpers.wait import eventually
from tests.integration.ha.conftest import acting, elect_args, health
from tests.integration.store.conftest import APP, TICKET_SECRET

pytestmark = pytest.mark.integration


def test_callbacks_to_the_standby_reach_the_leader(store_env: Any) -> None:
    env = store_env([], start=False)
    leader = env.start_operator(events_port=free_port(), extra=elect_args(env.ns))
    eventually(lambda: acting(leader), 30, what="the first replica leading")
    standby = env.start_operator(extra=elect_args(env.ns))  # the emulator's event URL
    eventually(lambda: health(standby).get("role") == "standby", 30, what="a standby")

    env.store_larkapp("shop", {"all": True})
    # No ticket: the leader asks a resend; the platform pushes it to the standby.
    eventually(lambda: env.data("shop").get("app_access_token"), 40, what="app token")
    assert "app_ticket received" in standby.logs()
    assert "app_ticket received" not in leader.logs()
    env.secrets.add(env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"])

    assert env.emu.event(APP, "app_open", "tenant-s1")["status"] == 200
    eventually(
        lambda: env.data("shop").get("tenant_access_token.tenant-s1"),
        15,
        interval=0.2,
        what="the tenant's token, learned through the standby",
    )
    assert env.data("shop")["tenant_access_token.tenant-s1"] == env.current_tokens()["tenant-s1"]
    assert "app_open for cli_store01: tenant tenant-s1" in standby.logs()
    assert health(standby).get("role") == "standby"
