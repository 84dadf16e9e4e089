"""The real operator process, authenticated as the chart's ServiceAccount (a bound token
from the TokenRequest API), in namespaced mode: it becomes healthy and reconciles a
LarkApp all the way to Ready with a token Secret, so the chart's least-privilege RBAC is
enough. With ha.enabled, two replicas share the chart's peering objects: one acts, the
other takes over when it stops."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.kube import Kube
from tests.helpers.procs import Operator
from tests.helpers.wait import eventually
from tests.integration.chart.conftest import CHART, Helm, sa_kubeconfig

pytestmark = pytest.mark.integration

APP_ID, APP_SECRET = "cli_chartrbac01", "chart-rbac-secret"
REFRESH_REQUESTED = "larkservice.io/refresh-requested-at"
REFRESH_HANDLED = "larkservice.io/refresh-handled-at"


def _no_permission_trouble(op: Operator) -> None:
    logs = op.logs()
    for needle in ("forbidden", "Forbidden", "Not enough permissions"):
        assert needle not in logs, f"{needle!r} in the operator's log:\n{logs[-3000:]}"


def _ready(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    cond = kube.condition(ns, name, "Ready")
    return cond if cond and cond["status"] == "True" else None


def _larkapp(kube: Kube, ns: str, name: str, emulator_url: str) -> None:
    kube.put_secret(ns, f"{name}-secret", {"appSecret": APP_SECRET})
    kube.create_larkapp(
        ns,
        name,
        {"appId": APP_ID, "appSecretRef": {"name": f"{name}-secret"}, "domain": emulator_url},
    )


def test_operator_runs_on_the_charts_namespaced_rbac(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
    chart_crds: None,
    emulator_factory: Any,
    tmp_path: Path,
) -> None:
    a, b = watch_namespaces
    release = f"op-{uuid.uuid4().hex[:6]}"
    sa = f"{release}-lark-operator"
    helm.install(release, namespace, {"crds": {"install": False}, "watchNamespaces": [a, b]})
    emu = emulator_factory({APP_ID: APP_SECRET})
    cfg = sa_kubeconfig(kube, namespace, sa, tmp_path / "sa.kubeconfig")
    op = Operator(tmp_path / "operator.log", cfg, [a, b], [emu.url]).start(wait=True)
    try:
        t0 = time.monotonic()
        for ns in (a, b):
            _larkapp(kube, ns, "app", emu.url)
        for ns in (a, b):
            eventually(lambda ns=ns: _ready(kube, ns, "app"), timeout=30, what=f"{ns}/app Ready")
            token = kube.secret(ns, "app-lark-token")
            assert token and token["app_id"] == APP_ID and token["tenant_access_token"]
            assert kube.event_reasons(ns, "app"), "no Event written"
        # kopf may list namespaces, so it does not spend ~55 s retrying before it serves.
        assert time.monotonic() - t0 < 30
        assert op.wait_healthy()["status"] == "healthy"
        _no_permission_trouble(op)
    finally:
        op.stop()
        helm.uninstall(release, namespace)


def test_ha_replicas_share_the_charts_peering(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
    chart_crds: None,
    emulator_factory: Any,
    tmp_path: Path,
) -> None:
    a, b = watch_namespaces
    release = f"ha-{uuid.uuid4().hex[:6]}"
    sa = peering = f"{release}-lark-operator"
    helm.install(
        release,
        namespace,
        {"crds": {"install": False}, "watchNamespaces": [a, b], "ha": {"enabled": True}},
    )
    emu = emulator_factory({APP_ID: APP_SECRET})
    cfg = sa_kubeconfig(kube, namespace, sa, tmp_path / "sa.kubeconfig")

    def replica(i: int, priority: int) -> Operator:
        # What the chart's /bin/sh wrapper does with a drawn priority, here fixed.
        return Operator(
            tmp_path / f"replica-{i}.log",
            cfg,
            [a, b],
            [emu.url],
            extra=["--peering", peering, "--priority", str(priority)],
            env={"POD_ID": f"replica-{i}"},
        )

    leader, standby = replica(1, 200), replica(2, 100)
    leader.start(wait=True)
    standby.start(wait=True)
    try:
        _larkapp(kube, a, "app", emu.url)
        eventually(lambda: _ready(kube, a, "app"), timeout=30, what="a/app Ready")

        def peers() -> set[str]:
            obj = kube.custom.get_namespaced_custom_object(
                "kopf.dev", "v1", a, "kopfpeerings", peering
            )
            return set((obj.get("status") or {}).keys())

        eventually(lambda: peers() == {"replica-1", "replica-2"}, what="both keep-alives")
        # A replica with --peering starts paused and stays so while a higher priority lives.
        assert "tenant token obtained" in leader.logs()
        assert "tenant token obtained" not in standby.logs()
        assert "Resuming operations" not in standby.logs()

        # The leader goes away (SIGTERM: it withdraws its keep-alive); the standby resumes
        # and serves a refresh request.
        leader.stop()
        eventually(lambda: peers() == {"replica-2"}, timeout=20, what="leader's keep-alive gone")
        stamp = str(time.time())
        kube.patch_larkapp(a, "app", {"metadata": {"annotations": {REFRESH_REQUESTED: stamp}}})

        def handled() -> bool:
            annotations = kube.larkapp(a, "app")["metadata"].get("annotations") or {}
            return annotations.get(REFRESH_HANDLED) == stamp

        eventually(handled, timeout=30, what="refresh handled by the former standby")
        assert "Resuming operations" in standby.logs()
        assert "tenant token obtained" in standby.logs()
        for op in (leader, standby):
            _no_permission_trouble(op)
    finally:
        standby.stop()
        leader.stop()
        helm.uninstall(release, namespace)


def test_peering_objects_match_what_kopf_looks_for(helm: Helm) -> None:
    """kopf finds its peering object by name in kopf.dev/v1 (ClusterKopfPeering when
    watching everything, KopfPeering per namespace otherwise); --peering names it."""
    for values, kind in (
        ({"ha": {"enabled": True}}, "ClusterKopfPeering"),
        ({"ha": {"enabled": True}, "watchNamespaces": ["x"]}, "KopfPeering"),
    ):
        docs = helm.template(values)
        (peering,) = [d for d in docs if d["kind"] == kind]
        assert peering["apiVersion"] == "kopf.dev/v1"
        (dep,) = [d for d in docs if d["kind"] == "Deployment"]
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--peering") + 1] == peering["metadata"]["name"]
    for crd in yaml.safe_load_all((CHART / "crds" / "kopf-peerings.yaml").read_text()):
        # kopf writes keep-alives into .status of the main resource: no status subresource.
        assert "subresources" not in crd["spec"]["versions"][0]
