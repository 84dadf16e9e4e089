"""`helm install` into the real apiserver: every rendered object exists afterwards (no pod
runs: there is no scheduler or kubelet here), upgrades between modes work, and
`helm uninstall` leaves the LarkApp CRD in place."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.helpers.kube import Kube
from tests.integration.chart.conftest import CHART, CRD_NAME, Helm, Ref, refs

pytestmark = pytest.mark.integration

# kind -> the resource name kubectl knows it by (fully qualified where groups could clash)
RESOURCE = {
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Deployment": "deployments.apps",
    "ClusterRole": "clusterroles.rbac.authorization.k8s.io",
    "ClusterRoleBinding": "clusterrolebindings.rbac.authorization.k8s.io",
    "Role": "roles.rbac.authorization.k8s.io",
    "RoleBinding": "rolebindings.rbac.authorization.k8s.io",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
    "PodDisruptionBudget": "poddisruptionbudgets.policy",
    "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
    "PrometheusRule": "prometheusrules.monitoring.coreos.com",
    "ConfigMap": "configmaps",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies.admissionregistration.k8s.io",
    "ValidatingAdmissionPolicyBinding": (
        "validatingadmissionpolicybindings.admissionregistration.k8s.io"
    ),
}
# On by default (admissionPolicy.enabled), in every mode.
POLICY = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def live(kube: Kube, ref: Ref) -> dict[str, Any] | None:
    args = ["get", f"{RESOURCE[ref.kind]}/{ref.name}", "-o", "json"]
    if ref.namespace:
        args += ["-n", ref.namespace]
    proc = kube.kubectl(*args, check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    return dict(json.loads(proc.stdout))


def assert_installed(
    helm: Helm, kube: Kube, release: str, ns: str, expected_kinds: set[str]
) -> set[Ref]:
    manifest = helm.manifest(release, ns)
    rendered = refs(manifest)
    assert {r.kind for r in rendered} == expected_kinds
    for ref in rendered:
        obj = live(kube, ref)
        assert obj is not None, f"{ref} is in the release manifest but not in the cluster"
        if ref.kind != "CustomResourceDefinition":  # adopted, see adopt_crd
            annotations = obj["metadata"].get("annotations") or {}
            assert annotations.get("meta.helm.sh/release-name") == release, ref
    return rendered


def test_install_all_namespaces_mode_with_everything(
    helm: Helm, kube: Kube, namespace: str, chart_crds: None, adopt_crd: Any
) -> None:
    release = f"all-{uuid.uuid4().hex[:6]}"
    adopt_crd(release, namespace)
    helm.install(
        release,
        namespace,
        {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True},
        },
    )
    installed = assert_installed(
        helm,
        kube,
        release,
        namespace,
        {
            "ServiceAccount",
            "Service",
            "Deployment",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "ServiceMonitor",
            "PrometheusRule",
            "ConfigMap",
            *POLICY,
        },
    )
    # The Deployment exists but no pod runs here (no scheduler/kubelet): expected.
    dep = live(kube, Ref("Deployment", namespace, f"{release}-lark-operator"))
    assert dep is not None and dep["spec"]["replicas"] == 1

    helm.uninstall(release, namespace)
    for ref in installed:
        if ref.kind == "CustomResourceDefinition":
            # helm.sh/resource-policy: keep — deleting it would delete every LarkApp.
            crd = live(kube, ref)
            assert crd is not None, f"uninstall deleted {ref}"
            assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        else:
            assert live(kube, ref) is None, f"{ref} left behind by uninstall"


def test_install_namespaced_ha_then_upgrade_to_all_namespaces(
    helm: Helm,
    kube: Kube,
    namespace: str,
    watch_namespaces: list[str],
) -> None:
    release = f"ns-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-lark-operator"
    helm.install(
        release,
        namespace,
        {"crds": {"install": False}, "watchNamespaces": watch_namespaces, "ha": {"enabled": True}},
    )
    installed = assert_installed(
        helm,
        kube,
        release,
        namespace,
        {
            "ServiceAccount",
            "Service",
            "Deployment",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "PodDisruptionBudget",
            *POLICY,
        },
    )
    # A Role per watched namespace, and the leader-election Role where the Lease lives.
    roles = {(r.namespace, r.name) for r in installed if r.kind in ("Role", "RoleBinding")}
    assert roles == {(ns, fullname) for ns in watch_namespaces} | {
        (namespace, f"{fullname}-leader-election"),
        (namespace, f"{namespace}-{fullname}-cluster-resources"),  # ClusterLarkApps' Secrets
        ("default", f"{namespace}-{fullname}-cluster-events"),  # ClusterLarkApps' Events
    }
    dep = live(kube, Ref("Deployment", namespace, fullname))
    assert dep is not None and dep["spec"]["replicas"] == 2

    # To all namespaces, without HA: the Roles and the PDB go, a ClusterRole with
    # the full rules comes, and the CRD stays untouched (crds.install still false).
    helm.run(
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        helm.values_file({"crds": {"install": False}}),
    )
    after = assert_installed(
        helm,
        kube,
        release,
        namespace,
        {"ServiceAccount", "Service", "Deployment", "ClusterRole", "ClusterRoleBinding", *POLICY},
    )
    for ref in installed - after:
        assert live(kube, ref) is None, f"{ref} left behind by the upgrade"
    dep = live(kube, Ref("Deployment", namespace, fullname))
    assert dep is not None and dep["spec"]["replicas"] == 1
    assert "--all-namespaces" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    helm.uninstall(release, namespace)
    assert live(kube, Ref("CustomResourceDefinition", None, CRD_NAME)) is not None
