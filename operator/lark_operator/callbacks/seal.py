"""The sending side, as the platform does it: an event payload sealed into the body and
the three signature headers. The emulator pushes with it."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from lark_operator.callbacks.crypto import encrypt, sign
from lark_operator.callbacks.envelope import NONCE, SIGNATURE, TIMESTAMP


def event_payload(
    verification_token: str, event: dict[str, Any], *, now: float | None = None
) -> dict[str, Any]:
    """A 1.0-schema event callback: {ts, uuid, token, type: event_callback, event}."""
    return {
        "ts": f"{time.time() if now is None else now:.6f}",
        "uuid": uuid.uuid4().hex,
        "token": verification_token,
        "type": "event_callback",
        "event": event,
    }


def seal(
    encrypt_key: str, payload: dict[str, Any], *, timestamp: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """(raw body, headers) of one callback request carrying `payload`."""
    body = json.dumps({"encrypt": encrypt(encrypt_key, json.dumps(payload).encode())}).encode()
    ts = str(int(time.time() if timestamp is None else timestamp))
    nonce = secrets.token_hex(8)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        TIMESTAMP: ts,
        NONCE: nonce,
        SIGNATURE: sign(ts, nonce, encrypt_key, body),
    }
    return body, headers
