"""Fidelity: the official SDK (lark-oapi from PyPI) — its webhook handler with signature
check, AES decryptor and Verification Token check — accepts what the emulator pushes.
Kept apart: importing the SDK takes seconds."""

from __future__ import annotations

import json
from typing import Any

import lark_oapi as lark
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils.decryptor import AESCipher

from lark_operator.emulator import EmulatorHandle
from lark_operator.emulator.store import RESEND_PATH
from tests.unit.emulator.conftest import APP, KEY, SECRET, TOKEN, Receiver
from tests.unit.emulator.test_store import post


def sdk_open(raw: bytes, headers: dict[str, str], key: str = KEY, token: str = TOKEN) -> Any:
    """The SDK's webhook handler on one request as it came: the event, or None if refused."""
    got: list[Any] = []
    handler = (
        lark.EventDispatcherHandler.builder(key, token)
        .register_p1_customized_event("app_ticket", got.append)
        .register_p1_customized_event("app_open", got.append)
        .build()
    )
    req = RawRequest()
    req.uri, req.body = "/lark/events", raw
    # Canonical spelling, as the SDK's own web adapters hand them over.
    names = {
        h.lower(): h
        for h in ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")
    }
    req.headers = {names[k.lower()]: v for k, v in headers.items() if k.lower() in names}
    resp = handler.do(req)
    return got[0] if resp.status_code == 200 and got else None


async def test_the_sdk_accepts_the_pushed_ticket(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    raw, headers = receiver.requests[0] if receiver.requests else await receiver.next()
    event = sdk_open(raw, headers)
    assert event is not None, "the official SDK refused the emulator's callback"
    assert event.event["type"] == "app_ticket" and event.event["app_id"] == APP
    assert event.event["app_ticket"] == store_emu.state.store[APP].tickets[-1]
    # Its AES decryptor alone, on the body as sent: the documented envelope.
    plain = json.loads(AESCipher(KEY).decrypt_str(json.loads(raw)["encrypt"]))
    assert plain["token"] == TOKEN and plain["type"] == "event_callback"
    # The SDK with another Encrypt Key or Verification Token refuses it: it checks both.
    assert sdk_open(raw, headers, key="another-key") is None
    assert sdk_open(raw, headers, token="another-token") is None
    tampered = raw.replace(b'"encrypt": "', b'"encrypt":  "')
    assert sdk_open(tampered, headers) is None  # the signature covers the raw body


async def test_the_sdk_accepts_resent_tickets_and_tenant_events(
    store_emu: EmulatorHandle, receiver: Receiver
) -> None:
    await receiver.next() if not receiver.requests else None
    await post(store_emu, RESEND_PATH, {"app_id": APP, "app_secret": SECRET})
    raw, headers = await receiver.next()
    assert sdk_open(raw, headers).event["app_ticket"] == store_emu.state.store[APP].tickets[-1]
    await post(
        store_emu, "/_emulator/events", {"app_id": APP, "type": "app_open", "tenant_key": "t-9"}
    )
    event = sdk_open(*receiver.requests[-1])
    assert event.event == {"app_id": APP, "type": "app_open", "tenant_key": "t-9"}
