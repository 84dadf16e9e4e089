"""The emulator's store apps over HTTP: pushed tickets (checked by the official SDK), the
ticket flow and its 10012, tenant tokens per tenant, resend, tenant events, and what
bot/v3/info answers per app."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from lark_operator.callbacks import decrypt
from lark_operator.cli.emulator import parse_store
from lark_operator.emulator import EmulatorHandle
from lark_operator.emulator.store import (
    RESEND_PATH,
    STORE_APP_PATH,
    STORE_TENANT_PATH,
)
from tests.unit.emulator.conftest import APP, KEY, SECRET, TOKEN, Receiver


async def post(emu: EmulatorHandle, path: str, body: Any, **headers: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(emu.base_url + path, json=body, headers=headers) as r,
    ):
        return dict(json.loads(await r.read()))


def opened(raw: bytes) -> dict[str, Any]:
    """The payload of a pushed callback (the format itself is checked by the official SDK
    in test_sdk_fidelity.py)."""
    return dict(json.loads(decrypt(KEY, json.loads(raw)["encrypt"])))


async def test_ticket_flow_and_10012_for_a_stale_or_unknown_ticket(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    await receiver.next() if not receiver.requests else None
    first = store_emu.state.store[APP].tickets[-1]
    ok = await post(
        store_emu, STORE_APP_PATH, {"app_id": APP, "app_secret": SECRET, "app_ticket": first}
    )
    assert ok["code"] == 0 and ok["app_access_token"].startswith("a-") and ok["expire"] == 7200
    bad = {"app_id": APP, "app_secret": SECRET, "app_ticket": "tk-never-pushed"}
    assert (await post(store_emu, STORE_APP_PATH, bad))["code"] == 10012
    wrong = {"app_id": APP, "app_secret": "nope", "app_ticket": first}
    assert (await post(store_emu, STORE_APP_PATH, wrong))["code"] == 10014
    # Two newer pushes make the first ticket stale.
    for _ in range(2):
        await post(store_emu, "/_emulator/events", {"app_id": APP, "type": "app_ticket"})
    stale = {"app_id": APP, "app_secret": SECRET, "app_ticket": first}
    assert (await post(store_emu, STORE_APP_PATH, stale))["code"] == 10012
    # A store app has no /internal tokens.
    internal = {"app_id": APP, "app_secret": SECRET}
    assert (await post(store_emu, "/open-apis/auth/v3/tenant_access_token/internal", internal))[
        "code"
    ] == 10003


async def test_tenant_tokens_per_tenant_with_their_own_reissue_rule(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    await receiver.next() if not receiver.requests else None
    ticket = store_emu.state.store[APP].tickets[-1]
    body = {"app_id": APP, "app_secret": SECRET, "app_ticket": ticket}
    app_token = (await post(store_emu, STORE_APP_PATH, body))["app_access_token"]

    async def tenant(key: str) -> dict[str, Any]:
        return await post(
            store_emu, STORE_TENANT_PATH, {"app_access_token": app_token, "tenant_key": key}
        )

    a, b = await tenant("tenant-a"), await tenant("tenant-b")
    assert a["code"] == b["code"] == 0 and a["tenant_access_token"] != b["tenant_access_token"]
    assert (await tenant("tenant-a"))["tenant_access_token"] == a["tenant_access_token"]
    assert (await tenant("tenant-z"))["code"] == 10013  # not installed
    bogus = {"app_access_token": "a-bogus", "tenant_key": "tenant-a"}
    assert (await post(store_emu, STORE_TENANT_PATH, bogus))["code"] == 99991664
    store_emu.advance(7200 - 1799)  # inside tenant-a's re-issue window
    renewed = await tenant("tenant-a")
    assert renewed["tenant_access_token"] != a["tenant_access_token"]
    assert renewed["expire"] == 7200


async def test_resend_pushes_a_new_ticket_soon(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    await receiver.next() if not receiver.requests else None
    before = len(receiver.requests)
    answer = await post(store_emu, RESEND_PATH, {"app_id": APP, "app_secret": SECRET})
    assert answer == {"code": 0, "msg": "ok"}
    raw, _ = await receiver.next()
    assert len(receiver.requests) == before + 1
    assert opened(raw)["event"]["app_ticket"] == store_emu.state.store[APP].tickets[-1]
    assert (await post(store_emu, RESEND_PATH, {"app_id": APP, "app_secret": "x"}))["code"] == 10014
    assert store_emu.calls(APP, RESEND_PATH) == 2


async def test_tenant_events_change_the_tenants_and_are_pushed(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    await receiver.next() if not receiver.requests else None
    answer = await post(
        store_emu,
        "/_emulator/events",
        {"app_id": APP, "type": "app_open", "tenant_key": "tenant-c"},
    )
    assert answer == {"status": 200}
    assert opened(receiver.requests[-1][0])["event"] == {
        "app_id": APP,
        "type": "app_open",
        "tenant_key": "tenant-c",
    }
    assert "tenant-c" in store_emu.state.store[APP].tenants
    await post(
        store_emu,
        "/_emulator/events",
        {"app_id": APP, "type": "app_uninstalled", "tenant_key": "tenant-c"},
    )
    assert "tenant-c" not in store_emu.state.store[APP].tenants
    assert opened(receiver.requests[-1][0])["event"]["type"] == "app_uninstalled"
    bad = await post(store_emu, "/_emulator/events", {"app_id": APP, "type": "app_open"})
    assert "error" in bad


async def test_bot_info_answers_per_app_as_set(store_emu: EmulatorHandle) -> None:
    token = (
        await post(
            store_emu,
            "/open-apis/auth/v3/tenant_access_token/internal",
            {"app_id": "cli_self", "app_secret": "self-secret"},
        )
    )["tenant_access_token"]

    async def info() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                store_emu.base_url + "/open-apis/bot/v3/info",
                headers={"Authorization": f"Bearer {token}"},
            ) as r,
        ):
            return dict(json.loads(await r.read()))

    assert (await info())["bot"]["activate_status"] == 2
    changed = await post(
        store_emu,
        "/_emulator/apps",
        {"app_id": "cli_self", "activate_status": 5, "ip_white_list": ["10.0.0.0/8"]},
    )
    assert changed["activate_status"] == 5
    bot = (await info())["bot"]
    assert bot["activate_status"] == 5 and bot["ip_white_list"] == ["10.0.0.0/8"]
    await post(store_emu, "/_emulator/apps", {"app_id": "cli_self", "bot": False})
    assert (await info())["code"] != 0
    assert "error" in await post(store_emu, "/_emulator/apps", {"app_id": "cli_new"})
    assert "error" in await post(
        store_emu, "/_emulator/apps", {"app_id": "cli_self", "activate_status": "2"}
    )


def test_cli_store_arguments() -> None:
    store, tenants = parse_store([f"{APP}:{SECRET}:{KEY}:{TOKEN}"], [f"{APP}:t1"])
    assert store[APP][0] == SECRET and store[APP][1].encrypt_key == KEY
    assert tenants == [(APP, "t1")]
    for bad in ([f"{APP}:{SECRET}:{KEY}"], [f"{APP}::{KEY}:{TOKEN}"]):
        with pytest.raises(ValueError) as e:
            parse_store(bad, [])
        assert SECRET not in str(e.value) and KEY not in str(e.value)
    with pytest.raises(ValueError, match="not a --store-app"):
        parse_store([], [f"{APP}:t1"])
