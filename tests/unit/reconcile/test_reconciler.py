"""The reconciler's decisions with scaled time: a fake clock, a fake apiserver and a
scripted Open Platform (the same flows run for real in tests/integration/tokens)."""

from __future__ import annotations

from typing import Any

import pytest

from lark_operator.openplatform import OpenPlatformError
from lark_operator.probes.result import ProbeResult
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.settings import Settings
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube, ScriptedClient

NS, NAME = "ns", "app"
BODY: dict[str, Any] = {
    "metadata": {"namespace": NS, "name": NAME, "uid": "u-1", "generation": 1},
    "spec": {
        "appId": "cli_unit01",
        "appSecretRef": {"name": "lark", "key": "appSecret"},
        "refresh": {"renewBefore": "10m", "jitter": 0.1},
    },
}


def _error(code: int, http_status: int = 200) -> OpenPlatformError:
    return OpenPlatformError.from_answer(
        endpoint="/open-apis/auth/v3/tenant_access_token/internal",
        code=code,
        http_status=http_status,
        msg="scripted",
    )


@pytest.fixture
def world() -> tuple[Reconciler, FakeKube, ScriptedClient, Clock]:
    clock = Clock()
    kube, client = FakeKube(), ScriptedClient(clock)
    kube.put_app_secret(NS, "lark", {"appSecret": "the-secret"})
    ctl = Reconciler(kube, client, Settings(), clock=clock, rng=lambda: 0.5)
    ctl.observe(BODY)
    return ctl, kube, client, clock


async def _step(ctl: Reconciler) -> None:
    await ctl.reconcile(ctl.registry.apps[(NS, NAME)])


async def test_invalid_credentials_make_a_handful_of_calls_in_five_minutes(world: Any) -> None:
    ctl, _kube, client, clock = world
    client.error = _error(10014)
    start = clock.now
    while clock.now - start <= 300:
        await _step(ctl)
        clock.now = max(clock.now, ctl.registry.apps[(NS, NAME)].token.next_refresh_at or clock.now)
    assert client.calls <= 5, client.calls
    app = ctl.registry.apps[(NS, NAME)]
    assert (
        app.token.credentials is not None and app.token.credentials.reason == "InvalidCredentials"
    )
    # Backoff keeps growing to the ~10 minute cap, and stays there.
    for _ in range(10):
        clock.now = app.token.next_refresh_at
        await _step(ctl)
    gap = app.token.next_refresh_at - clock.now
    assert 540 <= gap <= 660, gap


async def test_transient_failure_near_expiry_retries_within_30s_and_keeps_token(
    world: Any,
) -> None:
    ctl, kube, client, clock = world
    await _step(ctl)
    app = ctl.registry.apps[(NS, NAME)]
    good = kube.secrets[(NS, "app-lark-token")]["data"]["tenant_access_token"]
    clock.now = app.token.next_refresh_at
    client.error = _error(5000)
    for _ in range(20):  # a long outage
        await _step(ctl)
        delay = app.token.next_refresh_at - clock.now
        assert 0 < delay <= 30, delay
        assert clock.now < app.token.held.earliest_expiry
        assert kube.secrets[(NS, "app-lark-token")]["data"]["tenant_access_token"] == good
        clock.now = app.token.next_refresh_at
    client.error = None
    await _step(ctl)
    assert kube.secrets[(NS, "app-lark-token")]["data"]["tenant_access_token"] != good
    assert app.token.failures == 0 and app.token.last_error is None


async def test_token_expires_during_outage_turns_condition_expired(world: Any) -> None:
    ctl, kube, client, clock = world
    await _step(ctl)
    app = ctl.registry.apps[(NS, NAME)]
    client.error = _error(5000)
    clock.now = app.token.held.earliest_expiry + 1
    await _step(ctl)
    status = kube.status_patches[-1][2]
    tok = next(c for c in status["conditions"] if c["type"] == "TokenReady")
    assert (tok["status"], tok["reason"]) == ("False", "Expired")
    assert status["phase"] == "Failed"
    assert ("Warning", "TokenExpired") in [(t, r) for t, r, _ in kube.events]


async def test_unchanged_status_is_not_written_again(world: Any) -> None:
    ctl, kube, client, clock = world
    await _step(ctl)
    writes = len(kube.status_patches)
    for _ in range(100):
        clock.now += 1
        await _step(ctl)
    assert len(kube.status_patches) == writes
    assert client.calls == 1


async def test_rate_limit_waits_at_least_reset(world: Any) -> None:
    ctl, _kube, client, clock = world
    err = _error(99991400, 429)
    err.retry_after = 45.0
    client.error = err
    await _step(ctl)
    app = ctl.registry.apps[(NS, NAME)]
    assert app.token.next_refresh_at - clock.now >= 45
    assert app.token.credentials.reason == "RateLimited"


async def test_missing_key_is_a_condition_and_makes_no_upstream_call(world: Any) -> None:
    ctl, kube, client, _clock = world
    kube.put_app_secret(NS, "lark", {"other": "x"})
    await _step(ctl)
    assert client.calls == 0
    status = kube.status_patches[-1][2]
    cred = next(c for c in status["conditions"] if c["type"] == "CredentialsValid")
    assert (cred["status"], cred["reason"]) == ("False", "SecretKeyMissing")
    assert status["lastError"]["hint"]


async def test_domain_url_must_be_allowed(world: Any) -> None:
    ctl, _kube, client, _clock = world
    body = {**BODY, "spec": {**BODY["spec"], "domain": "https://evil.example.com"}}
    ctl.observe(body)
    await _step(ctl)
    assert client.calls == 0
    cred = ctl.registry.apps[(NS, NAME)].token.credentials
    assert cred is not None and cred.reason == "DomainNotAllowed"


def _Result(healthy: bool, reason: str, latency: float, now: float) -> ProbeResult:
    return ProbeResult("redis", healthy, reason, "m", latency, {}, now)


async def test_hundred_unchanged_probe_results_write_status_once(world: Any) -> None:
    ctl, kube, _client, clock = world
    body = {**BODY, "spec": {**BODY["spec"], "probes": {"redis": {"urlSecretRef": {"name": "r"}}}}}
    ctl.observe(body)
    await _step(ctl)  # no probe scheduler here: only the token part runs
    base = len(kube.status_patches)
    for i in range(100):  # 100 cycles of 2 s: health unchanged, latency varies
        clock.now += 2
        await ctl.on_probe_result((NS, NAME), _Result(True, "Healthy", 1 + i % 7, clock.now))
    assert len(kube.status_patches) == base + 1  # only the first result
    # a change of reason is written at once
    await ctl.on_probe_result((NS, NAME), _Result(False, "Unreachable", 0, clock.now))
    assert len(kube.status_patches) == base + 2
    # unchanged for five minutes: refreshed once (latency/checkedAt) so status is not stale
    for _ in range(160):
        clock.now += 2
        await ctl.on_probe_result((NS, NAME), _Result(False, "Unreachable", 0, clock.now))
    assert len(kube.status_patches) == base + 3


async def test_token_shorter_than_renew_before_is_not_refreshed_in_a_hot_loop(world: Any) -> None:
    ctl, _kube, client, clock = world
    client.ttl = 150.0  # renewBefore is 10m
    start = clock.now
    while clock.now - start < 600:
        await _step(ctl)
        clock.now = max(clock.now + 0.001, ctl.registry.apps[(NS, NAME)].token.next_refresh_at)
    assert client.calls <= 45, client.calls  # one per ~15 s, not one per 5 s


async def test_a_new_app_id_never_shows_beside_the_old_apps_token(world: Any) -> None:
    """appId changed on a live LarkApp: status shows no token until the new app's lands,
    the new app is asked at once, and the Secret's app_id always matches its token."""
    import base64

    ctl, kube, client, clock = world
    await _step(ctl)
    app = ctl.registry.apps[(NS, NAME)]
    old_fp = app.token.held.fingerprint()
    client.error = _error(10014)  # the new app's credentials fail: nothing may be blanked
    body = {
        **BODY,
        "metadata": {**BODY["metadata"], "generation": 2},
        "spec": {**BODY["spec"], "appId": "cli_unit02"},
    }
    ctl.observe(body)
    assert app.token.held is None and app.token.credentials is None
    calls = client.calls
    await _step(ctl)
    assert client.calls == calls + 1, "the new app is asked at once, not at the old schedule"
    status = app.published.status
    assert "token" not in status, "no token of the old app described for the new one"
    ready = {c["type"]: c for c in status["conditions"]}["TokenReady"]
    assert ready["status"] == "False"
    secret = kube.secrets[(NS, "app-lark-token")]
    assert base64.b64decode(secret["data"]["app_id"]).decode() == "cli_unit01"  # old pair kept
    client.error = None
    clock.now = app.token.next_refresh_at
    await _step(ctl)
    secret = kube.secrets[(NS, "app-lark-token")]
    assert base64.b64decode(secret["data"]["app_id"]).decode() == "cli_unit02"
    assert app.published.status["token"]["fingerprint"] != old_fp


async def test_a_target_that_is_the_app_secret_is_refused_before_any_call(world: Any) -> None:
    ctl, kube, client, _clock = world
    body = {**BODY, "spec": {**BODY["spec"], "target": {"secretName": "lark"}}}
    ctl.observe(body)
    before = dict(kube.secrets[(NS, "lark")])
    await _step(ctl)
    assert client.calls == 0
    assert kube.secrets[(NS, "lark")] == before
    conds = {c["type"]: c for c in ctl.registry.apps[(NS, NAME)].published.status["conditions"]}
    assert conds["TokenReady"]["reason"] == "SecretNotOwned"
    assert conds["Ready"]["reason"] == "SecretNotOwned"
    assert ("Warning", "SecretNotOwned") in [(t, r) for t, r, _ in kube.events]


async def test_an_app_secret_recreated_with_the_same_value_is_retried_at_once(
    world: Any,
) -> None:
    ctl, kube, client, _clock = world
    await _step(ctl)
    app = ctl.registry.apps[(NS, NAME)]
    saved = kube.secrets.pop((NS, "lark"))
    ctl.secret_changed("DELETED", NS, "lark", None)
    await _step(ctl)
    assert app.token.credentials is not None and app.token.credentials.reason == "SecretNotFound"
    kube.secrets[(NS, "lark")] = saved  # back, same value, long before the backoff ends
    ctl.secret_changed("ADDED", NS, "lark", "99")
    calls = client.calls
    await _step(ctl)
    assert client.calls == calls + 1
    assert app.token.credentials is not None and app.token.credentials.reason == "Valid"
