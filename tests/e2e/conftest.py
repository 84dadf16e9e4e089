"""Fixtures of the end-to-end test (`make e2e`, docs/e2e.md): the host captured before
anything starts, the images built from the Dockerfile, a control plane with a real node,
and the chart installed with the image beside the emulator in a pod. One node serves the
session; tearing it down compares the host with how it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from lark_devenv.binaries import MissingBinary, find
from lark_devenv.controlplane import ControlPlane
from tests.e2e.host import HostState
from tests.e2e.node import (
    CNI_BIN_DIR,
    HACK,
    Images,
    Node,
    NodeError,
    clear_leftovers,
    machine_lock,
    pod_ready,
)
from tests.helpers.kube import Kube
from tests.helpers.procs import http_json
from tests.helpers.wait import eventually
from tests.integration.chart.conftest import CHART, Helm

# command -> the Debian package that has it (.ci/run installs them)
COMMANDS = {
    "buildah": "buildah",
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "gcc": "gcc libc6-dev",
    "iptables-save": "iptables",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "ip": "iproute2",
}
BINARIES = (
    "kube-apiserver",
    "etcd",
    "helm",
    "kubelet",
    "kube-controller-manager",
    "kube-scheduler",
)

RELEASE, OPERATOR_NS, APP_NS = "lark-operator", "lark-system", "e2e"
APP_ID, LARKAPP = "cli_e2e0001", "app"
TOKEN_SECRET = f"{LARKAPP}-lark-token"
EMULATOR_PORT = 8080
# Tokens live 70 s and are re-issued below 65 s left, and the LarkApp renews 1m before
# expiry: a refresh every ~10 s, so a leader handover always has refreshes on both sides.
TOKEN_TTL, REISSUE_WINDOW = 70, 65


def _missing_prerequisites() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, a bridge, cgroups)")
    missing += [f"{c} (apt: {p})" for c, p in COMMANDS.items() if not shutil.which(c)]
    if not Path(CNI_BIN_DIR, "bridge").exists():
        missing.append(f"{CNI_BIN_DIR}/bridge (apt: containernetworking-plugins)")
    for name in BINARIES:
        try:
            find(name)
        except MissingBinary:
            missing.append(f"{name} (make controlplane)")
    return missing


@pytest.fixture(scope="session")
def host_before() -> Iterator[HostState]:
    """Prerequisites checked, the e2e lock held (one node per machine: the bridge, cgroup
    and addresses are fixed), and the host as it was before anything started."""
    missing = _missing_prerequisites()
    if missing:
        pytest.fail(
            "the e2e test needs: " + ", ".join(missing) + ". .ci/run installs the packages; "
            "deselect the test with -m 'not e2e'.",
            pytrace=False,
        )
    try:
        with machine_lock():
            clear_leftovers()  # of a run that was killed: not part of the host
            yield HostState.capture()
    except NodeError as e:
        pytest.fail(str(e), pytrace=False)
        yield HostState.capture()


def assert_host_restored(before: HostState) -> None:
    changed = before.differences(HostState.capture())
    assert not changed, "the host is not as it was:\n" + "\n".join(changed[:40])


@pytest.fixture(scope="session")
def images(host_before: HostState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    for stale in Path("/tmp").glob("lark-e2e-images-*"):  # a killed run's (we hold the lock)
        shutil.rmtree(stale)
    out = Path(tempfile.mkdtemp(prefix="lark-e2e-images-", dir="/tmp"))
    log = tmp_path_factory.mktemp("e2e") / "images.log"
    try:
        with open(log, "wb") as f:
            code = subprocess.run(
                [str(HACK / "images.sh"), str(out)], stdout=f, stderr=subprocess.STDOUT
            ).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"hack/e2e/images.sh failed ({code}):\n{tail}", pytrace=False)
        yield Images(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class Cluster:
    cp: ControlPlane
    kube: Kube
    node: Node
    helm: Helm

    def down(self) -> None:
        try:
            self.node.down()
        finally:
            self.cp.down()


@pytest.fixture(scope="session")
def cluster(
    host_before: HostState, images: Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("e2e-cluster")
    cp = ControlPlane(base / "controlplane", nodes=True)
    cp.up(timeout=90)
    kube = Kube(str(cp.kubeconfig))
    node = Node(cp, kube, images, base / "logs")
    version = str(cp.version()["gitVersion"]).lstrip("v")
    c = Cluster(cp, kube, node, Helm(base / "helm", str(cp.kubeconfig), version))
    try:
        node.up()
        yield c
    finally:
        c.down()
        assert_host_restored(host_before)


def larkapp_ready(kube: Kube) -> bool:
    return (kube.condition(APP_NS, LARKAPP, "Ready") or {}).get("status") == "True"


@dataclass
class Release:
    """The chart installed with the image, two replicas electing a leader, and a LarkApp
    against the emulator pod."""

    kube: Kube
    emulator_url: str
    app_secret: str

    def pods(self, terminating: bool = False) -> list[dict[str, Any]]:
        out = self.kube.kubectl(
            "get",
            "pods",
            "-n",
            OPERATOR_NS,
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "json",
        ).stdout
        pods = json.loads(out)["items"]
        return [p for p in pods if terminating or not p["metadata"].get("deletionTimestamp")]

    def lease(self) -> Any:
        return client.CoordinationV1Api(self.kube.api).read_namespaced_lease(
            RELEASE, OPERATOR_NS, _request_timeout=5
        )

    def issued_tokens(self) -> dict[str, Any]:
        """Tokens the emulator issued for the app, by token."""
        answer = http_json(f"{self.emulator_url}/_emulator/tokens/{APP_ID}")
        return {t["token"]: t for t in answer["tokens"]}

    def logs(self, pod: str) -> str:
        return self.kube.kubectl("logs", "-n", OPERATOR_NS, pod).stdout


def _emulator_pod(app_secret: str) -> dict[str, Any]:
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "emulator", "namespace": APP_NS, "labels": {"app": "emulator"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "emulator",
                    "image": "localhost/lark-operator:e2e",
                    "imagePullPolicy": "Never",
                    "args": [
                        "emulator",
                        "--host=0.0.0.0",
                        f"--port={EMULATOR_PORT}",
                        f"--app={APP_ID}:{app_secret}",
                        f"--token-ttl={TOKEN_TTL}",
                        f"--reissue-window={REISSUE_WINDOW}",
                    ],
                    "ports": [{"containerPort": EMULATOR_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": EMULATOR_PORT}, "periodSeconds": 1},
                    "securityContext": restricted,
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> Release:
    kube = cluster.kube
    app_secret = f"e2e-secret-{uuid.uuid4().hex}"
    # The restricted Pod Security Standard enforced, as a careful cluster admin would: a pod
    # of the chart that breaks it is refused, and the install never gets Ready.
    for ns in (APP_NS, OPERATOR_NS):
        kube.kubectl("create", "namespace", ns)
        kube.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    kube.apply(_emulator_pod(app_secret))
    eventually(lambda: pod_ready(kube, APP_NS, "emulator"), 120, 0.5, "the emulator pod Ready")
    ip = kube.core.read_namespaced_pod("emulator", APP_NS).status.pod_ip  # type: ignore[union-attr]
    # No kube-proxy or cluster DNS on this node: the operator reaches the emulator at its
    # pod's address, on the bridge.
    url = f"http://{ip}:{EMULATOR_PORT}"
    values = {
        "image": {"repository": "localhost/lark-operator", "tag": "e2e", "pullPolicy": "Never"},
        "allowedBaseUrls": [url],
        "ha": {"enabled": True},
    }
    cluster.helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NS,
        "-f",
        cluster.helm.values_file(values),
        "--wait",
        "--timeout",
        "180s",
    )
    kube.put_secret(APP_NS, "app-credentials", {"appSecret": app_secret})
    kube.apply(
        yaml.safe_dump(
            {
                "apiVersion": "larkservice.io/v1alpha1",
                "kind": "LarkApp",
                "metadata": {"name": LARKAPP, "namespace": APP_NS},
                "spec": {
                    "appId": APP_ID,
                    "appSecretRef": {"name": "app-credentials"},
                    "domain": url,
                    "refresh": {"renewBefore": "1m"},
                },
            }
        )
    )
    eventually(lambda: larkapp_ready(kube), 90, 0.5, "the LarkApp Ready")
    return Release(kube, url, app_secret)
