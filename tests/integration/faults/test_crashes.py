"""The operator killed (-9) at the worst moments, then started again: mid-refresh (an upstream
call in flight), mid-status-write (a burst of LarkApps half published), and restarted when
the token in the Secret has only seconds left. Each restart converges with nothing lost
and no token lapsing; recovery times are printed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lark_operator.vocabulary.names import GROUP, PLURAL, VERSION
from tests.helpers.procs import http_json
from tests.helpers.wait import always, eventually
from tests.integration.faults.conftest import TokenWatch, issue_directly

pytestmark = pytest.mark.integration

APP, SECRET = "cli_crash01", "s3cret-crash-value"
TOKEN_SECRETS = "app.kubernetes.io/managed-by=lark-operator"


def _health(op: Any) -> dict[str, Any]:
    try:
        return dict(http_json(op.health_url, timeout=2))
    except OSError:
        return {}


def test_kill9_mid_refresh_restart_converges(env_factory: Any) -> None:
    """ttl 70 s, re-issue 65 s, renewBefore 1m: the refresh is due ~10 s after issue. The
    emulator holds that call for 4 s; the operator is killed while it waits."""
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=65)
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    good = eventually(lambda: env.token("app"), 30, what="first token")
    eventually(lambda: env.ready("app"), 10)
    env.emu.fault(app_id=APP, latency_ms=4000, count=1)
    with TokenWatch(env, "app", APP) as watch:
        eventually(lambda: env.emu.token_calls(APP) >= 2, 20, interval=0.1, what="refresh sent")
        env.op.kill()
        assert env.token("app") == good, "a refresh cut short leaves the Secret as it was"
        restarted = time.monotonic()
        op = env.start_operator()
        new = eventually(
            lambda: (t := env.token("app")) != good and t, 20, interval=0.1, what="refreshed"
        )
        recovery = time.monotonic() - restarted
        eventually(
            lambda: env.ready("app") and env.status_matches_secret("app"),
            10,
            what="status matches the Secret",
        )
    print(f"\nkill -9 mid-refresh: new token {recovery:.1f}s after the restart began")
    assert not watch.bad, watch.bad[:3]
    current = [t for t in env.emu.tokens(APP)["tokens"] if t["current"]]
    assert new == current[0]["token"], "the Secret holds the platform's current token"
    cond = env.kube.condition(env.ns, "app", "TokenReady")
    assert cond and cond["reason"] == "Refreshed"
    assert recovery < 15, recovery
    assert _health(op).get("status") == "healthy"


def test_kill9_mid_status_write_restart_converges(env_factory: Any) -> None:
    """200 LarkApps of one app created at once: the operator is killed at its first token
    Secret, while the others' Secrets and statuses are being written (the operator keeps
    up with creations, so the kill comes while they are still being created); the
    restarted operator completes every one."""
    n = 200
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)

    def published() -> int:
        items = env.kube.custom.list_namespaced_custom_object(GROUP, VERSION, env.ns, PLURAL)
        return sum(1 for it in items["items"] if (it.get("status") or {}).get("token"))

    def stored() -> int:
        listed = env.kube.core.list_namespaced_secret(env.ns, label_selector=TOKEN_SECRETS)
        return len(listed.items)

    # Each app's Secret is written before its status: kill at the first Secret.
    with ThreadPoolExecutor(4) as pool:
        created = [pool.submit(env.larkapp, f"app-{i:03d}", APP) for i in range(n)]
        eventually(lambda: stored() or None, 30, interval=0.02, what="first token Secret")
        env.op.kill()
        secrets_at_kill, at_kill = stored(), published()
        for f in created:
            f.result()
    assert at_kill < n, "the kill came after every status was written: nothing was cut short"
    restarted = time.monotonic()
    env.start_operator()
    eventually(
        lambda: all(env.ready(f"app-{i:03d}") for i in range(n)), 90, interval=1, what="all Ready"
    )
    recovery = time.monotonic() - restarted
    print(
        f"\nkill -9 mid-status-write: {at_kill}/{n} statuses and {secrets_at_kill}/{n} Secrets"
        f" written at the kill; all Ready {recovery:.1f}s after the restart began"
    )
    current = {t["token"] for t in env.emu.tokens(APP)["tokens"] if t["valid"]}
    tokens = {env.token(f"app-{i:03d}") for i in range(n)}
    assert len(tokens) == 1 and tokens <= current, "every Secret holds the one valid token"
    fps = set()
    for i in range(n):
        assert env.status_matches_secret(f"app-{i:03d}")
        fps.add(env.kube.larkapp(env.ns, f"app-{i:03d}")["status"]["token"]["fingerprint"])
    assert len(fps) == 1, "every status describes that same token"
    # One call by the first operator; at most one more (shared by all) after the restart.
    assert env.emu.token_calls(APP) <= 2


def test_restart_with_seconds_left_refreshes_at_once(env_factory: Any) -> None:
    """The token the operator receives was issued 50 s earlier to another client (the
    emulator's clock moved on; ttl 70 s, re-issue window 15 s), so it has ~20 s left. The
    operator is killed right after storing it, and started again with ~12 s left (inside
    the re-issue window, so the platform hands out a new token): it must refresh at once,
    not at a time remembered from before or after a backoff."""
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=15, start=False)
    env.start_operator()
    first = issue_directly(env.emu.url, APP, SECRET)["tenant_access_token"]
    env.secrets.add(first)
    http_json(env.emu.url + "/_emulator/clock", "POST", {"advance": 50})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    with TokenWatch(env, "app", APP) as watch:
        eventually(lambda: env.token("app") == first, 20, interval=0.1, what="aged token stored")
        eventually(lambda: env.status_matches_secret("app"), 5, interval=0.1)
        env.op.kill()
        expires = watch.expiry[first]
        time.sleep(max(0.0, expires - time.time() - 12))  # start-up takes a few seconds
        restarted = time.monotonic()
        op = env.start_operator()  # returns once /health answers healthy
        healthy = time.monotonic()
        left_at_start = expires - time.time()
        eventually(lambda: env.token("app") != first, 15, interval=0.1, what="refreshed")
        recovery = time.monotonic() - restarted
        after_healthy = time.monotonic() - healthy
        left_at_refresh = expires - time.time()
        always(lambda: not watch.bad, 1, what="only valid tokens served after the refresh")
    print(
        f"\nrestart with {left_at_start:.1f}s left: refreshed {recovery:.1f}s after the restart"
        f" began ({after_healthy:.1f}s after /health), {left_at_refresh:.1f}s before expiry"
    )
    assert not watch.bad, watch.bad[:3]
    assert left_at_refresh > 0
    assert after_healthy < 3, "the refresh comes at start-up, not at a remembered time"
    assert (_health(op).get("controller") or {}).get("larkapps") == 1
    assert env.ready("app")
