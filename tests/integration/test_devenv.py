"""`lark-operator dev up|status|down` as a newcomer runs it: then README's `helm install`,
and a `dev down` + `dev up` under a running operator."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.env import Env
from tests.helpers.kube import Kube
from tests.helpers.procs import SCRIPT, Emulator, Operator
from tests.helpers.wait import eventually
from tests.integration.chart.conftest import CHART, REPO, Helm

pytestmark = pytest.mark.integration


def _dev(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "USE_EXISTING_CLUSTER"}
    return subprocess.run(
        [SCRIPT, "dev", *args], capture_output=True, text=True, timeout=120, env=env
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_up_status_down_twice(tmp_path: Path) -> None:
    d = str(tmp_path / "dev")
    for _ in range(2):
        up = _dev("up", "--dir", d)
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={tmp_path / 'dev' / 'kubeconfig'}" in up.stdout
        state = json.loads((tmp_path / "dev" / "state.json").read_text())

        again = _dev("up", "--dir", d)
        assert again.returncode == 0 and "already running" in again.stdout
        assert json.loads((tmp_path / "dev" / "state.json").read_text()) == state

        status = _dev("status", "--dir", d)
        assert status.returncode == 0
        assert "kube-apiserver v1.37.2" in status.stdout

        kubectl = Path(SCRIPT).parent / "kubectl"
        got = subprocess.run(
            [
                str(kubectl),
                "--kubeconfig",
                state["kubeconfig"],
                "get",
                "crd",
                "larkapps.larkservice.io",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (
            got.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/"
            "larkapps.larkservice.io"
        )

        down = _dev("down", "--dir", d)
        assert down.returncode == 0 and "stopped" in down.stdout
        assert not _alive(state["etcd_pid"]) and not _alive(state["apiserver_pid"])
        assert _dev("status", "--dir", d).returncode == 1


@pytest.fixture
def dev_dir(tmp_path: Path) -> Iterator[str]:
    """A `dev up` control plane in its own directory, stopped at the end whatever happened."""
    d = str(tmp_path / "dev")
    up = _dev("up", "--dir", d)
    assert up.returncode == 0, up.stderr
    try:
        yield d
    finally:
        _dev("down", "--dir", d)


def _readme_helm_install() -> list[str]:
    """README's install command, word for word."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Install in a cluster", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("helm install ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_readme_helm_install_works_after_dev_up(dev_dir: str, tmp_path: Path) -> None:
    kubeconfig = str(Path(dev_dir) / "kubeconfig")
    helm = Helm(tmp_path / "helm", kubeconfig, kube_version="")
    argv = _readme_helm_install()
    assert argv[0] == "helm"
    installed = subprocess.run(
        [helm.bin, *argv[1:]], cwd=REPO, env=helm.env, capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stderr
    release, namespace = argv[2], argv[argv.index("-n") + 1]
    kinds = {d["kind"] for d in helm.manifest(release, namespace)}
    assert "CustomResourceDefinition" in kinds and "Deployment" in kinds
    crd = Kube(kubeconfig).kubectl("get", "crd", "larkapps.larkservice.io", "-o", "json").stdout
    annotations = json.loads(crd)["metadata"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == release
    # A later `dev up` (it re-applies the CRD) leaves the release's CRD as the release has it.
    assert _dev("up", "--dir", dev_dir).returncode == 0
    assert helm.run("upgrade", release, str(CHART), "-n", namespace).returncode == 0


def _server(dev_dir: str) -> tuple[str, str]:
    state = json.loads((Path(dev_dir) / "state.json").read_text())
    cfg = yaml.safe_load((Path(dev_dir) / "kubeconfig").read_text())
    return state["server"], cfg["clusters"][0]["cluster"]["server"]


def test_down_up_keeps_the_address_and_a_running_operator_recovers(
    dev_dir: str, tmp_path: Path
) -> None:
    kubeconfig = str(Path(dev_dir) / "kubeconfig")
    kube = Kube(kubeconfig)
    ns = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", ns)
    app_id, secret = "cli_restart0001", f"s3cret-{uuid.uuid4().hex}"
    emu = Emulator(tmp_path / "emulator.log", {app_id: secret}).start()
    operators: list[Operator] = []

    def make_op(namespaces: list[str], allowed: list[str], **kw: Any) -> Operator:
        op = Operator(tmp_path / "operator.log", kubeconfig, namespaces, allowed, **kw)
        operators.append(op)
        return op.start()

    try:
        env = Env(kube, ns, emu, make_op)
        env.secrets.add(secret)
        env.app_secret("lark-secret", secret)
        env.start_operator()
        env.larkapp("before", app_id)
        eventually(lambda: env.ready("before"), timeout=60, what="before Ready")
        server, in_kubeconfig = _server(dev_dir)
        assert server == in_kubeconfig

        assert _dev("down", "--dir", dev_dir).returncode == 0
        up = _dev("up", "--dir", dev_dir)
        assert up.returncode == 0, up.stderr
        assert _server(dev_dir) == (server, server), "dev up moved the apiserver"
        assert "note:" not in up.stderr

        # The operator started before the restart reconciles a LarkApp made after it.
        assert env.op.alive()
        env.larkapp("after", app_id)
        eventually(lambda: env.ready("after"), timeout=120, what="after Ready")
        assert env.token("after")
        assert env.ready("before")  # kept across the restart (etcd's data stays in DIR)
        assert env.op.alive()
        env.assert_no_leaks()
    finally:
        for op in operators:
            op.stop()
        emu.stop()
