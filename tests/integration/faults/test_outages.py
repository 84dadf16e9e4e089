"""Dependencies of the operator going away under it: the apiserver (with etcd) for 30 s, the
Open Platform process for longer than a refresh period, and a base URL that does not
resolve at all. The operator survives each, keeps the last good token, and catches up
within one retry once the dependency is back; recovery times are printed."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from lark_devenv.controlplane import ControlPlane
from lark_operator.vocabulary.hints import hint_for
from tests.helpers.procs import http_json
from tests.helpers.wait import always, eventually
from tests.integration.faults.conftest import TokenWatch, issue_directly

pytestmark = pytest.mark.integration

APP, SECRET = "cli_outage01", "s3cret-outage-value"
RETRY_BASE = 5.0  # the operator's default first retry delay (LARK_OPERATOR_RETRY_BASE_SECONDS)
NEXT_TRY = re.compile(r"next try in ([0-9.]+)s")


def _planned_delays(op: Any, since: float = 0.0) -> list[float]:
    """The wait before the next try that each failed refresh logged (the operator's own
    schedule: exact, however loaded the machine), for failures at or after `since`."""
    entries = [e for e in op.log_entries("refresh failed (") if e["at"] >= since]
    return [float(m.group(1)) for e in entries if (m := NEXT_TRY.search(e["message"]))]


def _health(op: Any) -> dict[str, Any]:
    try:
        return dict(http_json(op.health_url, timeout=2))
    except OSError:
        return {}


def test_apiserver_down_30s_operator_catches_up(
    env_factory: Any, control_plane: ControlPlane
) -> None:
    """The token the operator starts from was issued 60 s earlier to another client (ttl
    130 s, re-issue window 65 s: 70 s left), so its refresh is due ~10 s in: while the
    apiserver is down. The operator gets the new token but cannot store it; the moment the
    apiserver is back, the Secret must get it (the old one would lapse before the next
    scheduled refresh)."""
    env = env_factory({APP: SECRET}, token_ttl=130, reissue_window=65, start=False)
    first = issue_directly(env.emu.url, APP, SECRET)["tenant_access_token"]
    env.secrets.add(first)
    http_json(env.emu.url + "/_emulator/clock", "POST", {"advance": 60})
    op = env.start_operator()
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    with TokenWatch(env, "app", APP) as watch:
        eventually(lambda: env.token("app") == first, 20, interval=0.1, what="token stored")
        eventually(lambda: env.ready("app"), 10, interval=0.2)
        calls = env.emu.token_calls(APP)
        down_at = time.monotonic()
        control_plane.stop()
        stop_took = time.monotonic() - down_at
        eventually(
            lambda: env.emu.token_calls(APP) > calls, 20, interval=0.2, what="refresh in outage"
        )
        time.sleep(max(0.0, down_at + 30 - time.monotonic()))
        assert op.alive(), "the operator must survive the outage"
        control_plane.start()
        up_at = time.monotonic()
        newest = next(t for t in env.emu.tokens(APP)["tokens"] if t["current"])["token"]
        assert newest != first
        eventually(lambda: env.token("app") == newest, 30, interval=0.2, what="Secret caught up")
        secret_after = time.monotonic() - up_at
        eventually(lambda: env.ready("app"), 30, interval=0.2, what="Ready again")
        ready_after = time.monotonic() - up_at
        op.wait_healthy(30)
        healthy_after = time.monotonic() - up_at
    print(
        f"\napiserver down {up_at - down_at:.0f}s (stopping took {stop_took:.1f}s): Secret"
        f" updated {secret_after:.1f}s, Ready {ready_after:.1f}s, /health healthy"
        f" {healthy_after:.1f}s after it was back"
        f" ({watch.failed_reads} reads failed during the outage)"
    )
    assert op.alive()
    assert not watch.bad, watch.bad[:3]
    assert secret_after <= RETRY_BASE + 5, secret_after
    status = env.kube.larkapp(env.ns, "app")["status"]
    assert status["phase"] == "Ready" and not status.get("lastError")


def test_emulator_down_longer_than_a_refresh_period(
    env_factory: Any, restart_emulator: Any
) -> None:
    """ttl 70 s, re-issue 65 s, renewBefore 1m: refresh due ~10 s after issue. The Open
    Platform process is gone from ~3 s to ~28 s: every attempt fails, the last good token
    stays in the Secret, and a new one comes within one retry delay of its return."""
    cap = 6  # LARK_OPERATOR_NEAR_EXPIRY_RETRY_CAP_SECONDS: the longest wait while a token lives
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=65, start=False)
    op = env.start_operator(env={"LARK_OPERATOR_NEAR_EXPIRY_RETRY_CAP_SECONDS": str(cap)})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    good = eventually(lambda: env.token("app"), 20, interval=0.1, what="first token")
    with TokenWatch(env, "app", APP) as watch:
        eventually(lambda: env.ready("app"), 10, interval=0.2)
        env.emu.stop()
        down_at = time.monotonic()

        def failing() -> bool:
            st = env.kube.larkapp(env.ns, "app").get("status") or {}
            return (st.get("lastError") or {}).get("reason") == "UpstreamUnavailable"

        eventually(failing, 25, interval=0.5, what="refresh failing")
        tok = env.kube.condition(env.ns, "app", "TokenReady")
        assert tok and tok["status"] == "True" and tok["reason"] == "RefreshFailed"
        assert env.token("app") == good, "the last good token stays"
        time.sleep(max(0.0, down_at + 25 - time.monotonic()))
        failures = env.kube.larkapp(env.ns, "app")["status"].get("consecutiveFailures", 0)
        delays = _planned_delays(op)
        env.emu = restart_emulator(env, {APP: SECRET}, token_ttl=70, reissue_window=65)
        back_at = time.monotonic()
        eventually(lambda: env.token("app") != good, cap + 10, interval=0.2, what="renewed")
        renewed_after = time.monotonic() - back_at
        eventually(lambda: env.ready("app"), 10, interval=0.2)
    print(
        f"\nemulator down {back_at - down_at:.0f}s ({failures} failed attempts): renewed"
        f" {renewed_after:.1f}s after it came back (retry cap {cap}s)"
    )
    assert not watch.bad, watch.bad[:3]
    assert renewed_after <= cap + 2, renewed_after
    assert 2 <= failures <= 12, failures  # retried, with backoff (at most every 6 s here)
    assert delays and max(delays) <= cap + 0.1, delays
    assert _health(op).get("status") == "healthy"


def test_after_expiry_tries_stay_cap_apart_and_recover_within_one(
    env_factory: Any, restart_emulator: Any
) -> None:
    """The platform is down past the token's expiry: workloads have nothing, so tries stay
    at most LARK_OPERATOR_NEAR_EXPIRY_RETRY_CAP_SECONDS apart after expiry too (before, the
    backoff grew to LARK_OPERATOR_RETRY_CAP_SECONDS, and a LarkApp recovered minutes after
    the platform came back). Scaled: ttl 30 s, cap 3 s, retry cap 60 s."""
    cap = 3
    env = env_factory({APP: SECRET}, token_ttl=30, reissue_window=29, start=False)
    op = env.start_operator(
        env={
            "LARK_OPERATOR_NEAR_EXPIRY_RETRY_CAP_SECONDS": str(cap),
            "LARK_OPERATOR_RETRY_CAP_SECONDS": "60",
        }
    )
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 20, interval=0.2, what="Ready")
    env.emu.stop()
    expired = eventually(
        lambda: env.kube.condition(env.ns, "app", "TokenReady")["reason"] == "Expired",
        40,
        interval=0.5,
        what="the token expires during the outage",
    )
    assert expired

    def failures() -> int:
        st = env.kube.larkapp(env.ns, "app").get("status") or {}
        return int(st.get("consecutiveFailures") or 0)

    # Five tries after expiry (in 24 s at most `cap` s apart, at least 24 / cap - 3 of them),
    # each planning the next within the cap: measured on the operator's own schedule.
    at_expiry, t0, since = failures(), time.monotonic(), time.time()
    eventually(lambda: failures() - at_expiry >= 5, 30, interval=0.5, what="five tries")
    after = failures() - at_expiry
    elapsed = time.monotonic() - t0
    delays = _planned_delays(op, since)
    env.emu = restart_emulator(env, {APP: SECRET}, token_ttl=30, reissue_window=29)
    back = time.monotonic()
    eventually(lambda: env.ready("app"), cap + 8, interval=0.2, what="renewed")
    recovered = time.monotonic() - back
    print(f"\n{after} tries in the {elapsed:.0f}s after expiry; recovered in {recovered:.1f}s")
    assert after >= 5, after
    assert delays and max(delays) <= cap + 0.1, delays  # never the 60 s retry cap
    assert recovered <= cap + 4, recovered


def test_unresolvable_base_url_is_upstream_unavailable_with_backoff(env_factory: Any) -> None:
    bad_url = "http://nonexistent.invalid"
    env = env_factory({APP: SECRET}, start=False)
    op = env.start_operator(extra=["--allowed-base-url", bad_url])
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP, domain=bad_url)

    def reported() -> dict[str, Any] | None:
        st = env.kube.larkapp(env.ns, "app").get("status") or {}
        err = st.get("lastError") or {}
        return st if err.get("reason") == "UpstreamUnavailable" else None

    st = eventually(reported, 20, interval=0.2, what="UpstreamUnavailable")
    t0 = time.monotonic()
    assert st["lastError"]["hint"] == hint_for("UpstreamUnavailable")
    assert "Traceback" not in st["lastError"]["message"]
    cred = env.kube.condition(env.ns, "app", "CredentialsValid")
    assert cred and cred["status"] == "Unknown" and cred["reason"] == "UpstreamUnavailable"

    def attempts() -> int:
        return int(env.kube.larkapp(env.ns, "app")["status"]["consecutiveFailures"])

    # Exponential backoff with full jitter from 5 s: retried, but a handful of attempts in
    # the first ~15 s, not a hot loop (the window fails the moment there are more).
    eventually(lambda: attempts() >= 2, 30, what="a retry")
    always(
        lambda: attempts() <= 8,
        max(0.0, 15 - (time.monotonic() - t0)),
        interval=0.5,
        what="at most 8 attempts in ~15 s",
    )
    failures = attempts()
    print(
        f"\nunresolvable base URL: {failures} attempts in the first ~{time.monotonic() - t0:.0f}s"
    )
    assert 2 <= failures <= 8, failures
    assert min(_planned_delays(op)) >= 1.0, "never retried at once"
    assert "next try in" in op.logs()
    assert op.alive() and _health(op).get("status") == "healthy"
    assert env.emu.token_calls(APP) == 0
