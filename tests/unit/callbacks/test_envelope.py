"""open_event against callbacks sealed from the documented format (documented.py): what is
accepted, and every way a callback is refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lark_operator.callbacks import AppKeys, Rejected, ReplayGuard, open_event
from lark_operator.callbacks.crypto import CipherError, decrypt, encrypt
from tests.unit.callbacks import documented
from tests.unit.callbacks.documented import ticket_event

A = AppKeys("cli_a", "key-a-0123", "token-a")
B = AppKeys("cli_b", "key-b-4567", "token-b")
KEYS = [A, B]
# One clock for sealing and opening: callbacks are signed at NOW unless a test says otherwise
# (sealing at the wall clock made them "stale" when the suite ran long after collection).
NOW = time.time()


def callback(*args: Any, at: float = NOW, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    return documented.callback(*args, at=at, **kwargs)


def opened(body: bytes, headers: dict[str, str], keys: list[AppKeys] = KEYS):
    return open_event(body, headers, keys, now=NOW, max_age=300)


def refused(body: bytes, headers: dict[str, str], keys: list[AppKeys] = KEYS) -> str:
    with pytest.raises(Rejected) as e:
        opened(body, headers, keys)
    assert 400 <= e.value.status < 500
    for secret in ("key-a-0123", "key-b-4567", "token-a", "token-b", "tk-secret"):
        assert secret not in str(e.value)
    return e.value.reason


def test_a_ticket_of_each_app_is_opened_with_that_apps_keys() -> None:
    for app in KEYS:
        event = opened(
            *callback(
                app.encrypt_key, app.verification_token, ticket_event(app.app_id, "tk-secret")
            )
        )
        assert (event.type, event.app_id, event.ticket) == ("app_ticket", app.app_id, "tk-secret")
        assert "tk-secret" not in repr(event)


def test_tenant_events_and_the_2_0_schema() -> None:
    event = opened(
        *callback(
            A.encrypt_key,
            A.verification_token,
            {"app_id": "cli_a", "type": "app_open", "tenant_key": "t1"},
        )
    )
    assert (event.type, event.tenant_key) == ("app_open", "t1")
    payload = {
        "schema": "2.0",
        "header": {
            "event_type": "app_uninstalled",
            "token": "token-a",
            "app_id": "cli_a",
            "tenant_key": "t2",
        },
        "event": {},
    }
    event = opened(*callback(A.encrypt_key, "", payload=payload))
    assert (event.type, event.app_id, event.tenant_key) == ("app_uninstalled", "cli_a", "t2")


def test_url_verification_plain_encrypted_or_signed() -> None:
    plain = json.dumps({"type": "url_verification", "challenge": "c-1", "token": "token-b"})
    assert opened(plain.encode(), {}).challenge == "c-1"
    sealed = callback(
        A.encrypt_key,
        "",
        payload={"type": "url_verification", "challenge": "c-2", "token": "token-a"},
    )
    assert opened(sealed[0], {}).challenge == "c-2"  # no signature headers needed for it
    assert opened(*sealed).challenge == "c-2"
    wrong = json.dumps({"type": "url_verification", "challenge": "c", "token": "nope"})
    assert refused(wrong.encode(), {}) == "bad_token"


def test_forged_replayed_malformed_and_unknown_callbacks_are_refused() -> None:
    good = ticket_event("cli_a", "tk-secret")
    # Signed with a key that is not the app's (a forger without the Encrypt Key).
    assert refused(*callback(A.encrypt_key, "token-a", good, sign_with="guess")) == "bad_signature"
    body, headers = callback(A.encrypt_key, "token-a", good)
    assert refused(body + b" ", headers) == "bad_signature"  # the raw body is what is signed
    assert refused(*callback(A.encrypt_key, "token-b", good)) == "bad_token"
    assert refused(*callback(A.encrypt_key, "token-a", good, at=NOW - 301)) == "stale"
    assert refused(*callback(A.encrypt_key, "token-a", good, at=NOW + 400)) == "stale"
    assert refused(*callback(A.encrypt_key, "token-a", ticket_event("cli_b", "x"))) == "unknown_app"
    assert (
        refused(*callback(A.encrypt_key, "token-a", {"app_id": "cli_a", "type": "im.message"}))
        == "unsupported"
    )
    assert (
        refused(
            *callback(
                A.encrypt_key,
                "token-a",
                {"app_id": "cli_a", "type": "app_open", "tenant_key": "../x y"},
            )
        )
        == "malformed"
    )
    assert refused(body, {}) == "unsigned"
    assert (
        refused(json.dumps({"type": "event_callback", "token": "token-a"}).encode(), {})
        == "unsigned"
    )
    assert refused(b"{not json", headers) == "malformed"
    assert refused(b"[]", headers) == "malformed"
    assert refused(b"x" * 70_000, headers) == "too_large"
    assert refused(*callback(A.encrypt_key, "token-a", good), keys=[B]) == "bad_signature"


def test_bad_ciphertext_signed_with_the_right_key() -> None:
    from tests.unit.callbacks.documented import signature

    for sealed in ("bm90IGFlcw==", "!!!", encrypt("other-key", b'{"a": 1}'), ""):
        body = json.dumps({"encrypt": sealed}).encode()
        headers = {
            "X-Lark-Request-Timestamp": str(int(NOW)),
            "X-Lark-Request-Nonce": "n",
            "X-Lark-Signature": signature(str(int(NOW)), "n", A.encrypt_key, body),
        }
        assert refused(body, headers) in ("undecryptable", "malformed")


def test_crypto_round_trip_and_refusals() -> None:
    assert decrypt("k", encrypt("k", b"hello")) == b"hello"
    for bad in ("", "a", "YWJj", encrypt("other", b"x" * 40)):
        with pytest.raises(CipherError):
            decrypt("k", bad)


def test_replay_guard_remembers_within_the_window_and_stays_bounded() -> None:
    guard = ReplayGuard(window=10, max_entries=3)
    assert guard.first_time("s1", 0) and not guard.first_time("s1", 5)
    assert guard.first_time("s1", 11)  # outside the window: the timestamp check refuses it
    for i in range(10):
        guard.first_time(f"x{i}", 12)
    assert len(guard._seen) <= 3
