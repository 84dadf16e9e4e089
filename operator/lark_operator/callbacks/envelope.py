"""One callback request (raw body + headers) into a verified Event, or Rejected.

Order of checks, cheapest and least revealing first: size; a JSON object; the signature
over the raw body, which also names the app (each known app's Encrypt Key is tried: the
request carries no app id outside the ciphertext); freshness of the signed timestamp
(replay); decryption; the Verification Token; the app id inside the event against the
app whose key signed it; the event type. A url_verification challenge is answered without
a signature (the SDKs check none there; it changes nothing), but only with a token that is
one of the known apps'.
Rejected carries a bounded reason (a metric label) and a message without secrets.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lark_operator.callbacks.crypto import CipherError, decrypt, signature_matches

URL_VERIFICATION = "url_verification"
APP_TICKET = "app_ticket"
APP_OPEN = "app_open"
APP_UNINSTALLED = "app_uninstalled"
EVENT_TYPES = (URL_VERIFICATION, APP_TICKET, APP_OPEN, APP_UNINSTALLED)

TIMESTAMP = "X-Lark-Request-Timestamp"
NONCE = "X-Lark-Request-Nonce"
SIGNATURE = "X-Lark-Signature"

# A tenant key becomes part of a Secret data key (tenant_access_token.<tenant_key>).
TENANT_KEY = re.compile(r"[-._a-zA-Z0-9]{1,128}")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,4096}")

# reason -> HTTP status (all 4xx: the platform must not take a refusal for an outage)
REJECTION_REASONS: dict[str, int] = {
    "too_large": 413,
    "malformed": 400,
    "unsigned": 401,
    "bad_signature": 401,
    "stale": 401,
    "replayed": 409,
    "undecryptable": 400,
    "bad_token": 401,
    "unknown_app": 403,
    "unsupported": 400,
}


class Rejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message
        self.status = REJECTION_REASONS[reason]


@dataclass(frozen=True)
class AppKeys:
    """A store app's callback credentials (never shown: no repr of the values)."""

    app_id: str
    encrypt_key: str = field(repr=False)
    verification_token: str = field(repr=False)


@dataclass(frozen=True)
class Event:
    type: str  # one of EVENT_TYPES
    app_id: str | None = None  # None only for a url_verification
    challenge: str | None = field(default=None, repr=False)
    ticket: str | None = field(default=None, repr=False)
    tenant_key: str | None = None
    signature: str | None = field(default=None, repr=False)  # for the replay guard


def open_event(
    raw: bytes,
    headers: Mapping[str, str],
    keys: Sequence[AppKeys],
    *,
    now: float,
    max_age: float = 300.0,
    max_bytes: int = 64 * 1024,
) -> Event:
    """The verified event in `raw`, or Rejected. `headers` is case-insensitive (aiohttp's
    CIMultiDict) or uses the canonical names above."""
    if len(raw) > max_bytes:
        raise Rejected("too_large", f"body of {len(raw)} bytes (at most {max_bytes})")
    outer = _json_object(raw, "body")
    if "encrypt" not in outer:
        return _plain(outer, keys)
    sealed = outer.get("encrypt")
    if not isinstance(sealed, str) or not sealed:
        raise Rejected("malformed", "'encrypt' is not a non-empty string")
    ts, nonce, sig = (headers.get(h) for h in (TIMESTAMP, NONCE, SIGNATURE))
    if ts and nonce and sig:
        signers = [k for k in keys if signature_matches(sig, ts, nonce, k.encrypt_key, raw)]
        if not signers:
            raise Rejected("bad_signature", "X-Lark-Signature matches no known app's Encrypt Key")
        _fresh(ts, now, max_age)
        payload = _decrypt(signers, sealed)
        return _event(payload, signers, signature=sig)
    # No signature: only a url_verification may come so (it changes nothing).
    payload = _decrypt(keys, sealed)
    event = _event(payload, keys, signature=None)
    if event.type != URL_VERIFICATION:
        raise Rejected("unsigned", "an event without X-Lark-Signature/-Timestamp/-Nonce")
    return event


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Rejected("malformed", f"{what} is not JSON") from None
    if not isinstance(body, dict):
        raise Rejected("malformed", f"{what} is not a JSON object")
    return body


def _fresh(ts: str, now: float, max_age: float) -> None:
    try:
        at = float(ts)
    except ValueError:
        raise Rejected("malformed", "X-Lark-Request-Timestamp is not a number") from None
    if not abs(now - at) <= max_age:  # also catches NaN
        raise Rejected("stale", f"signed {now - at:.0f}s from now (at most {max_age:.0f}s)")


def _decrypt(keys: Sequence[AppKeys], sealed: str) -> dict[str, Any]:
    for encrypt_key in dict.fromkeys(k.encrypt_key for k in keys):
        try:
            plain = decrypt(encrypt_key, sealed)
        except CipherError:
            continue
        try:
            return _json_object(plain, "the decrypted payload")
        except Rejected:
            continue  # padding can match by chance with a wrong key: the JSON cannot
    raise Rejected("undecryptable", "no known app's Encrypt Key opens 'encrypt'")


def _plain(body: dict[str, Any], keys: Sequence[AppKeys]) -> Event:
    if body.get("type") != URL_VERIFICATION:
        raise Rejected("unsigned", "an unencrypted event (every store app has an Encrypt Key)")
    return _event(body, keys, signature=None)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _event(payload: dict[str, Any], keys: Sequence[AppKeys], *, signature: str | None) -> Event:
    header = _obj(payload.get("header"))
    inner = _obj(payload.get("event"))
    token = payload.get("token", header.get("token"))
    if not isinstance(token, str) or not token:
        raise Rejected("bad_token", "no Verification Token in the payload")
    owners = [k for k in keys if hmac.compare_digest(k.verification_token.encode(), token.encode())]
    if not owners:
        raise Rejected("bad_token", "the Verification Token is no known app's")
    if payload.get("type") == URL_VERIFICATION:
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not _PRINTABLE.fullmatch(challenge):
            raise Rejected("malformed", "url_verification without a printable 'challenge'")
        return Event(URL_VERIFICATION, challenge=challenge, signature=signature)
    etype = inner.get("type", header.get("event_type"))
    app_id = inner.get("app_id", header.get("app_id"))
    if not isinstance(app_id, str) or app_id not in {k.app_id for k in owners}:
        raise Rejected("unknown_app", "the event's app_id is not the app whose keys it carries")
    if etype == APP_TICKET:
        ticket = inner.get("app_ticket")
        if not isinstance(ticket, str) or not _PRINTABLE.fullmatch(ticket):
            raise Rejected("malformed", "app_ticket event without a printable 'app_ticket'")
        return Event(APP_TICKET, app_id=app_id, ticket=ticket, signature=signature)
    if etype in (APP_OPEN, APP_UNINSTALLED):
        tenant = inner.get("tenant_key", header.get("tenant_key"))
        if not isinstance(tenant, str) or not TENANT_KEY.fullmatch(tenant):
            raise Rejected("malformed", f"{etype} event without a valid 'tenant_key'")
        return Event(str(etype), app_id=app_id, tenant_key=tenant, signature=signature)
    raise Rejected("unsupported", "an event type the operator does not subscribe to")
