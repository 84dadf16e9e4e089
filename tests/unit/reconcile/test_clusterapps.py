"""ClusterLarkApps with a fake apiserver and a scripted Open Platform: one call for every
LarkApp that uses the app, only in the namespaces it allows, the app's troubles said by
all of them, and a restart that changes nothing for them (the same flows run for real in
tests/integration/clusterapps)."""

from __future__ import annotations

import base64
from typing import Any

from lark_operator.openplatform import OpenPlatformError
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.settings import Settings
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube, ScriptedClient

CRNS = "lark-system"


def _cluster(allowed: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "shared", "uid": "c-1", "generation": 1},
        "spec": {
            "appId": "cli_shared1",
            "appSecretRef": {"name": "app"},
            "refresh": {"renewBefore": "10m", "jitter": 0.1},
            "allowedNamespaces": allowed,
        },
        "status": status or {},
    }


def _larkapp(ns: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": "app", "uid": f"u-{ns}", "generation": 1},
        "spec": {"appRef": {"name": "shared"}, **(spec or {})},
    }


def _world(client: ScriptedClient | None = None, clock: Clock | None = None) -> Any:
    clock = clock or Clock()
    kube, client = FakeKube(), client or ScriptedClient(clock)
    kube.put_app_secret(CRNS, "app", {"appSecret": "the-secret"})
    ctl = Reconciler(
        kube,
        client,
        Settings(),
        cluster_namespace=CRNS,
        clock=clock,
        rng=lambda: 0.5,
    )
    return ctl, kube, client, clock


async def _cycle(ctl: Reconciler, *namespaces: str) -> None:
    c = ctl.clusters.apps["shared"]
    assert c.spec is not None
    await ctl.clusters.reconcile(c, c.spec, "rid")
    for ns in namespaces:
        await ctl.reconcile(ctl.registry.apps[(ns, "app")])


def _token(kube: FakeKube, ns: str) -> str | None:
    secret = kube.secrets.get((ns, "app-lark-token"))
    raw = (secret or {}).get("data", {}).get("tenant_access_token")
    return base64.b64decode(raw).decode() if raw else None


def _cred(ctl: Reconciler, ns: str) -> str | None:
    c = ctl.registry.apps[(ns, "app")].token.credentials
    return c.reason if c else None


async def test_one_call_for_every_larkapp_and_only_where_allowed() -> None:
    ctl, kube, client, clock = _world()
    ctl.clusters.observe(_cluster({"names": ["a", "b"]}))
    for ns in ("a", "b", "c"):
        ctl.observe(_larkapp(ns))
    await _cycle(ctl, "a", "b", "c")
    assert client.calls == 1
    assert _token(kube, "a") == _token(kube, "b") == "tok-1"
    assert _token(kube, "c") is None and _cred(ctl, "c") == "NotAllowed"
    app_a = ctl.registry.apps[("a", "app")]
    assert (
        kube.secrets[("a", "app-lark-token")]["data"]["app_id"]
        == base64.b64encode(b"cli_shared1").decode()
    )
    assert app_a.published.status["token"]["fingerprint"].startswith("sha256:")
    # The App Secret was read where it lives, and only there.
    assert all(ns == CRNS for ns, name in kube.secrets if name == "app")

    # The app's status: who uses it, who was refused (written at most once a second).
    c = ctl.clusters.apps["shared"]
    await ctl.clusters.publish(c)
    status = c.published.status
    assert (status["larkApps"], status["refusedLarkApps"]) == (2, 1)
    ready = {x["type"]: x for x in status["conditions"]}["Ready"]
    assert ready["status"] == "True"

    # The next cycle: one more call, the new token in both Secrets.
    clock.now = c.token.next_refresh_at
    await _cycle(ctl, "a", "b", "c")
    assert client.calls == 2
    assert _token(kube, "a") == _token(kube, "b") == "tok-2"
    assert _token(kube, "c") is None


async def test_a_selector_waits_for_the_namespaces_labels_then_decides() -> None:
    ctl, kube, client, _ = _world()
    ctl.clusters.observe(_cluster({"selector": {"matchLabels": {"lark": "yes"}}}))
    ctl.observe(_larkapp("d"))
    ctl.observe(_larkapp("e"))
    await _cycle(ctl, "d", "e")
    # Not listed yet: neither refused nor served (a flap at every start otherwise).
    assert _cred(ctl, "d") is None and _token(kube, "d") is None
    labels = ctl.clusters.namespaces.event
    labels("SYNC", "d", {"lark": "yes"})
    labels("SYNC", "e", {})
    labels("SYNCED", "", None)
    await _cycle(ctl, "d", "e")
    assert _token(kube, "d") == "tok-1" and _cred(ctl, "e") == "NotAllowed"
    # The label removed: refused from then on, its token left in place.
    labels("MODIFIED", "d", {})
    await _cycle(ctl, "d")
    assert _cred(ctl, "d") == "NotAllowed" and _token(kube, "d") == "tok-1"
    assert client.calls == 1


async def test_the_apps_trouble_is_every_users_and_good_tokens_stay() -> None:
    ctl, kube, client, _ = _world()
    ctl.clusters.observe(_cluster({"names": ["a", "b"]}))
    for ns in ("a", "b"):
        ctl.observe(_larkapp(ns))
    await _cycle(ctl, "a", "b")
    kube.put_app_secret(CRNS, "app", {"appSecret": "rotated-wrong"})
    client.error = OpenPlatformError.from_answer(
        endpoint="/open-apis/auth/v3/tenant_access_token/internal",
        code=10014,
        http_status=200,
        msg="app secret invalid",
    )
    ctl.secret_changed("MODIFIED", CRNS, "app", "2")
    assert "credentials" in {str(w) for w in ctl.clusters.apps["shared"].pending}
    await _cycle(ctl, "a", "b")
    for ns in ("a", "b"):
        app = ctl.registry.apps[(ns, "app")]
        assert _cred(ctl, ns) == "InvalidCredentials"
        assert _token(kube, ns) == "tok-1"  # the good token stays
        tok = {c["type"]: c for c in app.published.status["conditions"]}["TokenReady"]
        assert (tok["status"], tok["reason"]) == ("True", "RefreshFailed")
    # Gone altogether.
    del kube.secrets[(CRNS, "app")]
    ctl.secret_changed("DELETED", CRNS, "app", None)
    await _cycle(ctl, "a", "b")
    assert {_cred(ctl, ns) for ns in ("a", "b")} == {"SecretNotFound"}


async def test_a_restart_rewrites_nothing_for_the_users() -> None:
    ctl, kube, _, clock = _world()
    ctl.clusters.observe(_cluster({"names": ["a"]}))
    ctl.observe(_larkapp("a"))
    await _cycle(ctl, "a")
    c = ctl.clusters.apps["shared"]
    await ctl.clusters.publish(c)
    recorded = dict(c.published.status)
    larkapp = {**_larkapp("a"), "status": ctl.registry.apps[("a", "app")].published.status}
    before = {k: v["metadata"]["resourceVersion"] for k, v in kube.secrets.items()}

    # A new process: the platform hands back the token it holds (the scripted client's
    # first token again), the schedule status recorded is kept.
    clock.now += 60
    again = ScriptedClient(clock)
    again.ttl -= 60  # the same token, the same expiry
    ctl2 = Reconciler(
        kube,
        again,
        Settings(),
        cluster_namespace=CRNS,
        clock=clock,
        rng=lambda: 0.9,
    )
    ctl2.clusters.observe(_cluster({"names": ["a"]}, recorded))
    ctl2.observe(larkapp)
    await _cycle(ctl2, "a")
    assert again.calls == 1
    c2 = ctl2.clusters.apps["shared"]
    assert c2.token.next_refresh_at == c.token.next_refresh_at
    assert {k: v["metadata"]["resourceVersion"] for k, v in kube.secrets.items()} == before
    await ctl2.clusters.publish(c2)
    assert c2.published.status == recorded  # nothing to write


def _planned(ctl: Reconciler, key: tuple[str, str]) -> float | None:
    """When the scheduler will next run `key` (its latest plan)."""
    entry = ctl.scheduler._entries.get(key)
    plans = [
        when for when, seq, k in ctl.scheduler._heap if k == key and entry and seq == entry.seq
    ]
    return plans[0] if plans else None


async def test_a_refused_larkapp_with_rollouts_due_does_not_spin() -> None:
    """Rollouts due when the namespace is taken away wait (they are not this LarkApp's to do
    any more): its next wake is its token's expiry, not the past."""
    ctl, kube, _, clock = _world()
    ctl.clusters.observe(_cluster({"names": ["a"]}))
    restart = {"target": {"rolloutRestart": [{"kind": "Deployment", "name": "api"}]}}
    ctl.observe(_larkapp("a", restart))
    await _cycle(ctl, "a")  # token written, rollout planned (not yet due)
    app = ctl.registry.apps[("a", "app")]
    assert app.rollout.due
    ctl.clusters.observe(
        {**_cluster({"names": ["b"]}), "metadata": {"name": "shared", "generation": 2}}
    )
    clock.now = max(app.rollout.due.values()) + 1  # the rollout is due now
    entry = ctl.scheduler._entries[("a", "app")]
    entry.done_seq = entry.seq  # the scheduler starts the run the change asked for
    await ctl.reconcile(app)
    assert _cred(ctl, "a") == "NotAllowed"
    assert kube.workload_patches == []
    planned = _planned(ctl, ("a", "app"))
    assert planned is not None and planned > clock.now + 60
