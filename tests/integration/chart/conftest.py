"""Fixtures for the Helm chart tests: the `helm` binary with its own cache/config/data
homes, rendering helpers, and the CRDs the chart's optional objects need in the local
apiserver (minimal monitoring.coreos.com CRDs: no Prometheus Operator here)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lark_devenv.binaries import MissingBinary, find
from tests.helpers.kube import Kube, sa_kubeconfig  # noqa: F401 - re-exported
from tests.helpers.wait import eventually

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "lark-operator"
CRD_FILE = REPO / "crds" / "larkapps.yaml"
CRD_NAME = "larkapps.larkservice.io"
CLUSTER_CRD_NAME = "clusterlarkapps.larkservice.io"

# Just enough of the Prometheus Operator's CRDs for the apiserver to accept (and dry-run)
# a ServiceMonitor and a PrometheusRule; the real ones validate far more.
MONITORING_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    for kind, plural in (
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    )
]


class HelmError(AssertionError):
    pass


class Helm:
    """The helm CLI, isolated from the user's own Helm state."""

    def __init__(self, home: Path, kubeconfig: str, kube_version: str):
        self.bin = str(find("helm"))
        self.kubeconfig = kubeconfig
        # helm built from source without its ldflags assumes Kubernetes 1.20 for `template`
        # and `lint`, below the chart's kubeVersion; pass the server's version instead.
        self.kube_version = kube_version
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": kubeconfig,
        }
        self.tmp = home / "values"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.bin, *args], capture_output=True, text=True, env=self.env, timeout=120
        )
        if check and proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def values_file(self, values: dict[str, Any]) -> str:
        path = self.tmp / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)

    def template_text(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "lo",
        namespace: str = "lark-system",
        extra: tuple[str, ...] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            self.kube_version,
            "-f",
            self.values_file(values or {}),
            *extra,
            check=check,
        )

    def template(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "lo",
        namespace: str = "lark-system",
    ) -> list[dict[str, Any]]:
        out = self.template_text(values, release=release, namespace=namespace).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def install(
        self, release: str, namespace: str, values: dict[str, Any], *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "-f",
            self.values_file(values),
            "--wait=false",
            "--timeout",
            "60s",
            *extra,
        )

    def uninstall(self, release: str, namespace: str) -> None:
        self.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")

    def manifest(self, release: str, namespace: str) -> list[dict[str, Any]]:
        out = self.run("get", "manifest", release, "--namespace", namespace).stdout
        return [d for d in yaml.safe_load_all(out) if d]


@dataclass(frozen=True)
class Ref:
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def refs(docs: list[dict[str, Any]]) -> set[Ref]:
    return {Ref(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def ensure_crds(kube: Kube, docs: list[dict[str, Any]]) -> None:
    """Create the CRDs that are missing (as Helm does with a chart's crds/ directory) and
    wait until they are served; an existing CRD (e.g. the real Prometheus Operator's on a
    kind cluster) is left alone."""
    for doc in docs:
        name = doc["metadata"]["name"]
        if kube.kubectl("get", "crd", name, check=False).returncode == 0:
            continue
        created = kube.kubectl("create", "-f", "-", input=yaml.safe_dump(doc), check=False)
        if created.returncode != 0 and "AlreadyExists" not in created.stderr:
            raise AssertionError(f"creating CRD {name} failed: {created.stderr}")
        kube.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{name}")


@pytest.fixture(scope="session")
def kube_version(kube: Kube) -> str:
    info = json.loads(kube.kubectl("version", "-o", "json").stdout)
    return str(info["serverVersion"]["gitVersion"]).lstrip("v").split("+")[0]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory, kubeconfig: str, kube_version: str) -> Helm:
    try:
        find("helm")
    except MissingBinary as e:
        pytest.fail(str(e))
    return Helm(tmp_path_factory.mktemp("helm"), kubeconfig, kube_version)


@pytest.fixture(scope="session")
def chart_crds(kube: Kube) -> None:
    """ServiceMonitor / PrometheusRule CRDs in the apiserver, for the chart's monitoring
    objects (the chart's own LarkApp CRD is installed by the harness)."""
    ensure_crds(kube, MONITORING_CRDS)


@pytest.fixture
def watch_namespaces(kube: Kube) -> list[str]:
    """Two fresh namespaces for namespaced mode."""
    names = [f"w{i}-{uuid.uuid4().hex[:8]}" for i in (1, 2)]
    for name in names:
        kube.kubectl("create", "namespace", name)
    return names


@pytest.fixture
def adopt_crd(kube: Kube) -> Iterator[Any]:
    """Let a release take over the LarkApp and ClusterLarkApp CRDs that the test harness
    installed with kubectl (the documented migration path: add Helm's ownership metadata),
    and put the CRDs' labels and annotations back afterwards so other tests see them as
    before."""
    names = (CRD_NAME, CLUSTER_CRD_NAME)
    before = {
        name: json.loads(kube.kubectl("get", "crd", name, "-o", "json").stdout)["metadata"]
        for name in names
    }

    def adopt(release: str, namespace: str) -> None:
        for name in names:
            kube.kubectl("label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")
            kube.kubectl(
                "annotate",
                "--overwrite",
                "crd",
                name,
                f"meta.helm.sh/release-name={release}",
                f"meta.helm.sh/release-namespace={namespace}",
            )

    yield adopt
    for name in names:
        after = json.loads(kube.kubectl("get", "crd", name, "-o", "json").stdout)["metadata"]
        patch: dict[str, Any] = {"metadata": {}}
        for field in ("labels", "annotations"):
            old, new = before[name].get(field) or {}, after.get(field) or {}
            patch["metadata"][field] = {k: old.get(k) for k in set(old) | set(new)}
        kube.kubectl("patch", "crd", name, "--type=merge", "-p", json.dumps(patch))


def sa_user(namespace: str, sa: str) -> str:
    """The username a ServiceAccount's requests carry (what the admission policy matches)."""
    return f"system:serviceaccount:{namespace}:{sa}"


def as_user(
    kube: Kube, user: str, ns: str, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl impersonating `user` (the harness's admin may impersonate anyone)."""
    return kube.kubectl(f"--as={user}", "-n", ns, *args, input=input, check=False)


def policy_denial(policy: str) -> str:
    """How the apiserver words a request refused by one of the chart's admission policies
    (the binding has the policy's name); the validation's own message follows."""
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: "


def wait_policy_enforced(kube: Kube, user: str, ns: str, policy: str) -> None:
    """The apiserver starts enforcing a new policy and binding a moment after they are
    created (its policy informer): wait until `user` is refused an unlabelled Secret (a
    server-side dry run, so nothing is created while it is not yet enforced)."""

    def refused() -> bool:
        proc = as_user(
            kube, user, ns, "create", "secret", "generic", "policy-probe", "--from-literal=k=v",
            "--dry-run=server",
        )  # fmt: skip
        return proc.returncode != 0 and policy_denial(policy) in proc.stderr

    eventually(refused, timeout=30, what=f"admission policy {policy} enforced")
