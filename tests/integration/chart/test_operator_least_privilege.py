"""The real operator process, authenticated as the chart's ServiceAccount (a bound token
from the TokenRequest API), in namespaced mode: it becomes healthy and reconciles a
LarkApp all the way to Ready with a token Secret, so the chart's least-privilege RBAC is
enough; with the chart's admission policy enforced, so everything the operator does to its
token Secrets (create, replace, cut the owner reference, delete) passes it. With
ha.enabled, two replicas elect a leader on the chart's Lease: one acts, the other takes
over when it stops."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kube import Kube
from tests.helpers.procs import Operator, http_json
from tests.helpers.wait import eventually
from tests.integration.chart.conftest import (
    Helm,
    sa_kubeconfig,
    sa_user,
    wait_policy_enforced,
)

pytestmark = pytest.mark.integration

APP_ID, APP_SECRET = "cli_chartrbac01", "chart-rbac-secret"
REFRESH_REQUESTED = "larkservice.io/refresh-requested-at"
REFRESH_HANDLED = "larkservice.io/refresh-handled-at"


def _no_permission_trouble(op: Operator) -> None:
    logs = op.logs()
    for needle in ("forbidden", "Forbidden", "Not enough permissions", "AdmissionPolicy"):
        assert needle not in logs, f"{needle!r} in the operator's log:\n{logs[-3000:]}"


def _ready(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    cond = kube.condition(ns, name, "Ready")
    return cond if cond and cond["status"] == "True" else None


def _larkapp(
    kube: Kube, ns: str, name: str, emulator_url: str, target: dict[str, Any] | None = None
) -> None:
    kube.put_secret(ns, f"{name}-secret", {"appSecret": APP_SECRET})
    spec = {"appId": APP_ID, "appSecretRef": {"name": f"{name}-secret"}, "domain": emulator_url}
    if target:
        spec["target"] = target
    kube.create_larkapp(ns, name, spec)


def test_operator_runs_on_the_charts_namespaced_rbac(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
    emulator_factory: Any,
    tmp_path: Path,
) -> None:
    a, b = watch_namespaces
    release = f"op-{uuid.uuid4().hex[:6]}"
    sa = f"{release}-lark-operator"
    helm.install(release, namespace, {"crds": {"install": False}, "watchNamespaces": [a, b]})
    wait_policy_enforced(kube, sa_user(namespace, sa), a, f"{namespace}-{sa}")
    emu = emulator_factory({APP_ID: APP_SECRET})
    cfg = sa_kubeconfig(kube, namespace, sa, tmp_path / "sa.kubeconfig")
    # The chart's own --cluster-resource-namespace (the release namespace), as the pod gets it.
    extra = _chart_flag(helm, release, namespace, "--cluster-resource-namespace")
    assert extra == ["--cluster-resource-namespace", namespace]
    # A ClusterLarkApp whose App Secret is in the release namespace, used from `a` by a
    # LarkApp that also rolls a Deployment after each new token.
    kube.put_secret(namespace, "shared-app", {"appSecret": APP_SECRET})
    shared = f"shared-{release}"
    kube.create_cluster_larkapp(
        shared,
        {
            "appId": APP_ID,
            "appSecretRef": {"name": "shared-app"},
            "domain": emu.url,
            "refresh": {"renewBefore": "1m"},
            "allowedNamespaces": {"names": [a]},
        },
    )
    kube.create_deployment(a, "api")
    op = Operator(tmp_path / "operator.log", cfg, [a, b], [emu.url], extra=extra).start(wait=True)
    try:
        t0 = time.monotonic()
        _larkapp(kube, a, "app", emu.url)
        _larkapp(kube, b, "app", emu.url, {"deletionPolicy": "Retain"})
        restart = [{"kind": "Deployment", "name": "api"}]
        kube.create_larkapp(
            a, "follower", {"appRef": {"name": shared}, "target": {"rolloutRestart": restart}}
        )
        for ns in (a, b):
            eventually(lambda ns=ns: _ready(kube, ns, "app"), timeout=30, what=f"{ns}/app Ready")
            token = kube.secret(ns, "app-lark-token")
            assert token and token["app_id"] == APP_ID and token["tenant_access_token"]
            # The Event follows the status write that said Ready: it may land a moment later.
            eventually(lambda ns=ns: kube.event_reasons(ns, "app"), timeout=10, what="an Event")
        # kopf may list namespaces, so it does not spend ~55 s retrying before it serves.
        assert time.monotonic() - t0 < 30
        assert op.wait_healthy()["status"] == "healthy"
        eventually(lambda: _ready(kube, a, "follower"), timeout=30, what="the follower Ready")
        status = kube.cluster_larkapp(shared)["status"]
        assert status["larkApps"] == 1 or eventually(
            lambda: kube.cluster_larkapp(shared)["status"]["larkApps"] == 1, timeout=10
        )
        assert [e for e in kube.events("default", shared) if e.involved_object.name == shared]
        fingerprint = kube.larkapp(a, "follower")["status"]["token"]["fingerprint"]
        eventually(  # through the workloads admission policy, within half of renewBefore
            lambda: (
                (kube.deployment(a, "api").spec.template.metadata.annotations or {}).get(
                    "larkservice.io/token-fingerprint"
                )
                == fingerprint
            ),
            timeout=40,
            what="the Deployment rolled",
        )

        # Deleting the LarkApps: the operator deletes a's token Secret (deletionPolicy
        # Delete; no garbage collector runs here, so only the operator can) and cuts the
        # owner reference from b's (Retain, a merge PATCH).
        assert kube.secret_obj(b, "app-lark-token").metadata.owner_references
        for ns in (a, b):
            kube.delete_larkapp(ns, "app")
        eventually(
            lambda: kube.secret_obj(a, "app-lark-token") is None, timeout=30, what="a's deleted"
        )

        def retained() -> bool:
            secret = kube.secret_obj(b, "app-lark-token")
            assert secret is not None, "the Retain token Secret was deleted"
            return not secret.metadata.owner_references

        eventually(retained, timeout=30, what="b's token Secret without its owner reference")
        _no_permission_trouble(op)
    finally:
        op.stop()
        kube.delete_cluster_larkapp(shared)
        helm.uninstall(release, namespace)


def _chart_flag(helm: Helm, release: str, namespace: str, flag: str) -> list[str]:
    dep = next(d for d in helm.manifest(release, namespace) if d["kind"] == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return list(args[args.index(flag) : args.index(flag) + 2])


def test_ha_replicas_elect_a_leader_on_the_charts_lease(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
    emulator_factory: Any,
    tmp_path: Path,
) -> None:
    a, b = watch_namespaces
    release = f"ha-{uuid.uuid4().hex[:6]}"
    sa = lease = f"{release}-lark-operator"
    helm.install(
        release,
        namespace,
        {"crds": {"install": False}, "watchNamespaces": [a, b], "ha": {"enabled": True}},
    )
    dep = next(d for d in helm.manifest(release, namespace) if d["kind"] == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    emu = emulator_factory({APP_ID: APP_SECRET})
    cfg = sa_kubeconfig(kube, namespace, sa, tmp_path / "sa.kubeconfig")

    def replica(i: int) -> Operator:
        # The chart's own election arguments (namespace, Lease name), as the pods get them.
        election = args[args.index("--leader-elect") :]
        election += _chart_flag(helm, release, namespace, "--cluster-resource-namespace")
        return Operator(tmp_path / f"replica-{i}.log", cfg, [a, b], [emu.url], extra=election)

    def role(op: Operator) -> str:
        return str(http_json(op.health_url).get("role"))

    first, second = replica(1), replica(2)
    first.start(wait=True)
    eventually(lambda: role(first) == "leader", timeout=20, what="first replica leads")
    second.start(wait=True)
    try:
        assert role(second) == "standby"
        holder = kube.kubectl(
            "get", "lease", lease, "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"
        ).stdout
        assert holder == http_json(first.health_url)["leaderElection"]["identity"]

        _larkapp(kube, a, "app", emu.url)
        eventually(lambda: _ready(kube, a, "app"), timeout=30, what="a/app Ready")
        assert "tenant token obtained" in first.logs()
        assert "tenant token obtained" not in second.logs()

        # The leader stops (SIGTERM: it releases the Lease); the standby takes over at its
        # next retry and serves a refresh request.
        first.stop()
        eventually(lambda: role(second) == "leader", timeout=20, what="standby takes over")
        stamp = str(time.time())
        kube.patch_larkapp(a, "app", {"metadata": {"annotations": {REFRESH_REQUESTED: stamp}}})

        def handled() -> bool:
            annotations = kube.larkapp(a, "app")["metadata"].get("annotations") or {}
            return annotations.get(REFRESH_HANDLED) == stamp

        eventually(handled, timeout=30, what="refresh handled by the new leader")
        assert "tenant token obtained" in second.logs()
        for op in (first, second):
            _no_permission_trouble(op)
    finally:
        second.stop()
        first.stop()
        helm.uninstall(release, namespace)


def test_store_app_on_the_charts_rbac_and_admission_policy(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
    emulator_factory: Any,
    tmp_path: Path,
) -> None:
    """events.enabled, namespaced: the operator as the chart's ServiceAccount stores the
    ticket in its Secret in the release namespace (created and replaced through the
    admission policy) and gets the store tokens, without a single refusal."""
    from tests.fixtures.procs import free_port

    a, _ = watch_namespaces
    release = f"st-{uuid.uuid4().hex[:6]}"
    sa = f"{release}-lark-operator"
    helm.install(
        release,
        namespace,
        {"crds": {"install": False}, "watchNamespaces": [a], "events": {"enabled": True}},
    )
    wait_policy_enforced(kube, sa_user(namespace, sa), a, f"{namespace}-{sa}")
    port = free_port()
    store_id, key, token = "cli_chartstore01", "chart-encrypt-key", "chart-verification"
    emu = emulator_factory(
        {},
        store_apps=[f"{store_id}:{APP_SECRET}:{key}:{token}"],
        tenants=[f"{store_id}:tenant-c1"],
        event_url=f"http://127.0.0.1:{port}/lark/events",
    )
    cfg = sa_kubeconfig(kube, namespace, sa, tmp_path / "sa.kubeconfig")
    op = Operator(
        tmp_path / "operator.log",
        cfg,
        [a],
        [emu.url],
        extra=["--cluster-resource-namespace", namespace],
        events_port=port,
    ).start(wait=True)
    try:
        kube.put_secret(a, "store-secret", {"appSecret": APP_SECRET})
        kube.put_secret(a, "store-keys", {"encryptKey": key, "verificationToken": token})
        store = {
            "encryptKeyRef": {"name": "store-keys"},
            "verificationTokenRef": {"name": "store-keys"},
            "tenants": {"keys": ["tenant-c1"]},
        }
        spec = {"appId": store_id, "appSecretRef": {"name": "store-secret"}, "domain": emu.url}
        kube.create_larkapp(a, "shop", {**spec, "appType": "Store", "store": store})
        eventually(lambda: _ready(kube, a, "shop"), timeout=40, what="store app Ready")
        data = kube.secret(a, "shop-lark-token")
        assert data and data["tenant_access_token.tenant-c1"] and data["app_access_token"]
        # A second ticket replaces the first in the Secret (an update through the policy).
        from lark_operator.tokens.ticketsecret import secret_name

        first = kube.secret(namespace, secret_name(store_id))["app_ticket"]
        assert emu.event(store_id, "app_ticket")["status"] == 200
        eventually(
            lambda: kube.secret(namespace, secret_name(store_id))["app_ticket"] != first,
            timeout=15,
            what="the new ticket stored",
        )
        _no_permission_trouble(op)
    finally:
        op.stop()
        helm.uninstall(release, namespace)
