"""A LarkApp's token, end to end: issued into a Secret, renewed before expiry cycle after
cycle, shared between LarkApps of one app, repaired when tampered with, kept across
operator restarts, cleaned up per deletionPolicy."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from lark_operator.tokens.secret import fingerprint
from tests.helpers.token_watch import TokenWatch
from tests.helpers.wait import always, eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_happy01", "s3cret-happy-value"


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_happy_path_token_in_secret_status_and_events(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30, what="Ready=True")

    issued = [t for t in env.emu.tokens(APP)["tokens"] if t["type"] == "tenant"]
    assert len(issued) == 1
    data = env.kube.secret(env.ns, "app-lark-token")
    assert data is not None
    env.secrets.add(data["tenant_access_token"])
    assert data["tenant_access_token"] == issued[0]["token"]
    assert data["app_id"] == APP
    assert abs(_ts(data["expires_at"]) - issued[0]["expires_at"]) <= 1

    obj = env.kube.larkapp(env.ns, "app")
    status = obj["status"]
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert abs(_ts(status["token"]["expiresAt"]) - issued[0]["expires_at"]) <= 1
    assert status["token"]["fingerprint"].startswith("sha256:")
    assert status["token"]["secretName"] == "app-lark-token"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["CredentialsValid"]["reason"] == "Valid"
    assert conds["TokenReady"]["status"] == "True"
    assert conds["TokenReady"]["reason"] == "Issued"

    secret = env.kube.secret_obj(env.ns, "app-lark-token")
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "lark-operator"
    assert secret.metadata.labels["larkservice.io/larkapp"] == "app"
    owner = secret.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("LarkApp", "app", obj["metadata"]["uid"])

    reasons = eventually(
        lambda: (r := env.kube.event_reasons(env.ns, "app")) and "TokenRefreshed" in r and r, 10
    )
    # The first token of a new LarkApp is one Event that also says the credentials passed.
    assert "CredentialsValidated" not in reasons
    messages = env.kube.event_messages(env.ns, "app")
    assert any(m.startswith("Credentials accepted by the Open Platform. Token ") for m in messages)

    # kopf writes nothing of its own on a default LarkApp (no kopf.zalando.org
    # annotations, no finalizer: Owner+Delete is the garbage collector's job).
    annotations = obj["metadata"].get("annotations") or {}
    assert not any(k.startswith("kopf.zalando.org/") for k in annotations)
    assert not obj["metadata"].get("finalizers")


def test_renewed_before_expiry_for_three_cycles_with_no_expired_read(env_factory: Any) -> None:
    """ttl 70 s, re-issue window 65 s, renewBefore 1m: a refresh every ~10 s. A reader
    checks the Secret continuously against the emulator's list of valid tokens."""
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=65)
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.token("app"), 30, what="first token")

    with TokenWatch(env, "app", APP) as watch:
        eventually(lambda: len(watch.seen) >= 4, 75, interval=1, what="three renewals")
    assert not watch.bad, watch.bad[:3]
    assert len(set(watch.seen)) == len(watch.seen), "a renewal must bring a new token"
    cond = env.kube.condition(env.ns, "app", "TokenReady")
    assert cond and cond["status"] == "True" and cond["reason"] == "Refreshed"


def test_fifty_larkapps_of_one_app_share_one_upstream_call_per_cycle(env_factory: Any) -> None:
    env = env_factory({APP: SECRET}, token_ttl=100, reissue_window=90)
    env.app_secret("lark-secret", SECRET)
    for i in range(50):
        env.larkapp(f"app-{i:02d}", APP)
    eventually(
        lambda: all(env.token(f"app-{i:02d}") for i in range(50)),
        60,
        interval=1,
        what="50 token Secrets",
    )
    assert env.emu.token_calls(APP) == 1
    first = env.token("app-00")
    # renewBefore 1m of a 100 s token: the next cycle starts ~40 s after issue.
    eventually(
        lambda: all(env.token(f"app-{i:02d}") != first for i in range(50)),
        70,
        interval=1,
        what="every app on the renewed token",
    )
    assert env.emu.token_calls(APP) == 2
    assert len({env.token(f"app-{i:02d}") for i in range(50)}) == 1


def test_restart_reissues_nothing_still_valid(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30)
    before_calls = env.emu.token_calls(APP)
    before = env.kube.larkapp(env.ns, "app")
    env.op.stop()
    op = env.start_operator()
    # Give the new operator time to see the object and (wrongly) refresh it.
    eventually(lambda: '"resumed: token in Secret still valid' in op.logs(), 20)
    always(lambda: env.emu.token_calls(APP) == before_calls, 2, what="no refresh of a valid token")
    after = env.kube.larkapp(env.ns, "app")
    assert after["status"]["token"] == before["status"]["token"]


def test_secret_deleted_or_edited_is_restored(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    good = eventually(lambda: env.token("app"), 30)
    calls = env.emu.token_calls(APP)

    env.kube.delete_secret(env.ns, "app-lark-token")
    eventually(lambda: env.token("app") == good, 10, what="Secret recreated")

    # A hand edit of the data (its labels kept: a Secret stripped of the managed-by label
    # is no longer the operator's, see tests/integration/hostile/test_ownership.py).
    env.kube.core.patch_namespaced_secret(
        "app-lark-token",
        env.ns,
        {"stringData": {"tenant_access_token": "tampered", "app_id": APP, "expires_at": "x"}},
    )
    eventually(lambda: env.token("app") == good, 10, what="Secret data repaired")
    assert env.emu.token_calls(APP) == calls, "repair must not call the Open Platform"


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_deletion_policy(env_factory: Any, policy: str) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP, target={"deletionPolicy": policy})
    eventually(lambda: env.token("app"), 30)
    finalizers = env.kube.larkapp(env.ns, "app")["metadata"].get("finalizers") or []
    # Retain must cut the owner reference before the object goes: our finalizer holds it.
    assert finalizers == (["larkservice.io/finalizer"] if policy == "Retain" else [])
    env.kube.delete_larkapp(env.ns, "app")
    eventually(
        lambda: env.kube.larkapp_gone(env.ns, "app"), 20, what="LarkApp deleted (finalizer removed)"
    )
    if policy == "Delete":
        # no finalizer on Owner+Delete: the Secret goes right after the LarkApp (here the
        # operator deletes it; in a cluster with a controller-manager, the GC does too)
        eventually(lambda: env.kube.secret_obj(env.ns, "app-lark-token") is None, 10)
    else:

        def kept_and_released() -> bool:
            secret = env.kube.secret_obj(env.ns, "app-lark-token")
            assert secret is not None, "a Retain token Secret was deleted"
            return not secret.metadata.owner_references

        always(kept_and_released, 2, what="the Secret kept, with no owner reference")


def test_forced_refresh_by_annotation(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30)
    calls = env.emu.token_calls(APP)
    env.kube.patch_larkapp(
        env.ns,
        "app",
        {
            "metadata": {
                "annotations": {"larkservice.io/refresh-requested-at": "2026-11-22T10:00:00Z"}
            }
        },
    )
    eventually(lambda: env.emu.token_calls(APP) == calls + 1, 15, what="forced refresh")


def test_suspend_stops_upstream_calls(env_factory: Any) -> None:
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=65)
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30)
    env.kube.patch_larkapp(env.ns, "app", {"spec": {"suspend": True}})
    eventually(lambda: env.kube.larkapp(env.ns, "app")["status"]["phase"] == "Suspended", 15)
    calls = env.emu.token_calls(APP)
    # over a window past the ~10 s refresh point of a 70 s token
    always(lambda: env.emu.token_calls(APP) == calls, 12, what="no upstream call while suspended")
    token = env.token("app")
    assert token, "suspend keeps what exists"


def test_a_changed_app_id_never_shows_beside_the_old_apps_token(env_factory: Any) -> None:
    """appId (with its Secret) changed on a live LarkApp, the new app's secret wrong at
    first: no status of the new generation describes the old app's token as its own (before,
    TokenReady stayed True with the old app's token beside the new appId), the Secret keeps
    the old pair (app_id and token always belong together), and once the new app's secret is
    right its token lands within seconds."""
    old_app, new_app = "cli_switch01", "cli_switch02"
    env = env_factory({old_app: "switch-secret-old-0001", new_app: "switch-secret-new-0002"})
    env.app_secret("old", "switch-secret-old-0001")
    env.app_secret("new", "not-the-new-apps-secret")
    env.larkapp("app", old_app, secret_name="old")
    eventually(lambda: env.ready("app"), 30, what="Ready for the old app")
    old_token = env.token("app")
    obj = env.kube.patch_larkapp(
        env.ns, "app", {"spec": {"appId": new_app, "appSecretRef": {"name": "new"}}}
    )
    generation = obj["metadata"]["generation"]

    def issued(app_id: str) -> dict[str, str]:
        return {t["token"]: app_id for t in env.emu.tokens(app_id)["tokens"]}

    def consistent() -> dict[str, Any]:
        tokens = {**issued(old_app), **issued(new_app)}
        data = env.kube.secret(env.ns, "app-lark-token") or {}
        tok = data.get("tenant_access_token")
        if tok:
            env.secrets.add(tok)
            assert tokens.get(tok) == data.get("app_id"), "app_id and token out of step"
        st = env.kube.larkapp(env.ns, "app").get("status") or {}
        if st.get("observedGeneration") == generation:
            new_fps = {fingerprint(t) for t in issued(new_app)}
            if "token" in st:
                assert st["token"]["fingerprint"] in new_fps, "the old app's token shown"
            ready = next(c for c in st["conditions"] if c["type"] == "TokenReady")
            assert ready["status"] != "True" or "token" in st, ready
        return st

    def refused() -> bool:
        st = consistent()
        cred = next((c for c in st.get("conditions", []) if c["type"] == "CredentialsValid"), {})
        return st.get("observedGeneration") == generation and cred.get("reason") == (
            "InvalidCredentials"
        )

    eventually(refused, 20, interval=0.1, what="the new app refused")
    assert env.token("app") == old_token, "the old app's token is never blanked"
    assert (env.kube.secret(env.ns, "app-lark-token") or {})["app_id"] == old_app
    env.app_secret("new", "switch-secret-new-0002")
    t0 = time.monotonic()

    def switched() -> bool:
        consistent()
        data = env.kube.secret(env.ns, "app-lark-token") or {}
        return data.get("app_id") == new_app and env.ready("app")

    eventually(switched, 15, interval=0.1, what="the new app's token")
    assert env.token("app") != old_token
    assert time.monotonic() - t0 < 15
