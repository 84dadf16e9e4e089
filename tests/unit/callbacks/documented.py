"""The platform's callback format written from the documentation alone (pycryptodome, not
the operator's code): what the tests seal events with."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

from Crypto.Cipher import AES


def encrypt(encrypt_key: str, plaintext: bytes) -> str:
    """base64(iv || AES-256-CBC(plaintext, PKCS#7)), key = SHA-256(Encrypt Key)."""
    iv = os.urandom(16)
    pad = 16 - len(plaintext) % 16
    cipher = AES.new(hashlib.sha256(encrypt_key.encode()).digest(), AES.MODE_CBC, iv)
    return base64.b64encode(iv + cipher.encrypt(plaintext + bytes([pad]) * pad)).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def callback(
    encrypt_key: str,
    token: str,
    event: dict[str, Any] | None = None,
    *,
    payload: dict[str, Any] | None = None,
    at: float | None = None,
    sign_with: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one signed, encrypted callback (1.0 schema)."""
    if payload is None:
        payload = {
            "ts": "1",
            "uuid": os.urandom(8).hex(),
            "token": token,
            "type": "event_callback",
            "event": event,
        }
    body = json.dumps({"encrypt": encrypt(encrypt_key, json.dumps(payload).encode())}).encode()
    ts, nonce = str(int(time.time() if at is None else at)), os.urandom(6).hex()
    headers = {
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, sign_with or encrypt_key, body),
    }
    return body, headers


def ticket_event(app_id: str, ticket: str) -> dict[str, Any]:
    return {"app_id": app_id, "type": "app_ticket", "app_ticket": ticket}
