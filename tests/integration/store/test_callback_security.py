"""POST /lark/events from outside: callbacks sealed by an implementation written from the
documented format (tests/unit/callbacks/documented.py, not the operator's code) are
accepted; forged, replayed, malformed, undecryptable and oversized ones get a 4xx, change
nothing, are counted, and no secret reaches the logs."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.helpers.wait import eventually
from tests.integration.store.conftest import APP, ENCRYPT_KEY, TICKET_SECRET, VERIFICATION_TOKEN
from tests.unit.callbacks.documented import callback, signature, ticket_event

pytestmark = pytest.mark.integration


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    assert time.monotonic() - started < 3, "the platform waits 3 s for an answer"
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def rejected(metrics: str, reason: str) -> float:
    m = re.search(
        rf'^lark_service_callbacks_rejected_total\{{reason="{reason}"\}} (\S+)$', metrics, re.M
    )
    return float(m.group(1)) if m else 0.0


def test_documented_callbacks_accepted_and_every_bad_one_refused(store_env: Any) -> None:
    env = store_env([])
    env.store_larkapp("shop", {"all": True})
    eventually(lambda: env.data("shop").get("app_access_token"), 30, what="app token")
    url = env.op.events_url

    # url_verification, as the console sends it when the URL is registered.
    challenge = {"type": "url_verification", "challenge": "ch-123", "token": VERIFICATION_TOKEN}
    assert post(url, json.dumps(challenge).encode(), {}) == (200, {"challenge": "ch-123"})
    # A ticket sealed by the test's own implementation of the documented format.
    ours = "tk-from-the-test-0001"
    env.secrets.add(ours)
    status, _ = post(url, *callback(ENCRYPT_KEY, VERIFICATION_TOKEN, ticket_event(APP, ours)))
    assert status == 200
    eventually(lambda: env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"] == ours, 10)
    before = env.kube.secret_obj(env.ns, TICKET_SECRET).metadata.resource_version
    shop_before = env.data("shop")

    second_ticket = "tk-forged-0002"
    env.secrets.add(second_ticket)
    good = ticket_event(APP, second_ticket)
    replay_body, replay_headers = callback(ENCRYPT_KEY, VERIFICATION_TOKEN, good)
    assert post(url, replay_body, replay_headers)[0] == 200  # the original is fine...
    eventually(lambda: env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"] == second_ticket, 10)
    # ...put the test's ticket back, then replay the same signed request.
    assert post(url, *callback(ENCRYPT_KEY, VERIFICATION_TOKEN, ticket_event(APP, ours)))[0] == 200
    eventually(lambda: env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"] == ours, 10)
    before = env.kube.secret_obj(env.ns, TICKET_SECRET).metadata.resource_version

    ts = str(int(time.time()))
    garbage = json.dumps({"encrypt": "bm90IGEgY2lwaGVydGV4dCBhdCBhbGwh"}).encode()
    cases = {
        "bad_signature": callback(ENCRYPT_KEY, VERIFICATION_TOKEN, good, sign_with="guessed-key"),
        "bad_token": callback(ENCRYPT_KEY, "not-the-token", good),
        "stale": callback(ENCRYPT_KEY, VERIFICATION_TOKEN, good, at=time.time() - 3600),
        "replayed": (replay_body, replay_headers),
        "undecryptable": (
            garbage,
            {
                "X-Lark-Request-Timestamp": ts,
                "X-Lark-Request-Nonce": "n1",
                "X-Lark-Signature": signature(ts, "n1", ENCRYPT_KEY, garbage),
            },
        ),
        "too_large": (b'{"encrypt": "' + b"A" * (2 << 20) + b'"}', {}),
        "malformed": (b"{not json", {}),
        "unsupported": callback(
            ENCRYPT_KEY, VERIFICATION_TOKEN, {"app_id": APP, "type": "im.message.receive_v1"}
        ),
    }
    metrics_before = env.op.metrics()
    for reason, (body, headers) in cases.items():
        status, answer = post(url, body, headers)
        assert 400 <= status < 500, (reason, status)
        assert answer == {"error": reason}, (reason, answer)
    metrics_after = env.op.metrics()
    for reason in cases:
        assert rejected(metrics_after, reason) == rejected(metrics_before, reason) + 1, reason

    # Nothing changed: the ticket Secret and the token Secret are as they were.
    assert env.kube.secret_obj(env.ns, TICKET_SECRET).metadata.resource_version == before
    assert env.kube.secret(env.ns, TICKET_SECRET)["app_ticket"] == ours
    data = env.data("shop")
    assert data["app_access_token"] == shop_before["app_access_token"]
    assert not any(k.startswith("tenant_access_token.") for k in data)
    logs = env.op.logs()
    assert "callback refused (bad_signature" in logs
    for secret in (ENCRYPT_KEY, VERIFICATION_TOKEN, ours, second_ticket, "ch-123"):
        assert secret not in logs
