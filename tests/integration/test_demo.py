"""`make demo` (hack/demo.py) on a cluster where another operator acts on its namespace:
it says so and stops, instead of showing one operator's results mixed with another's."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kube import Kube

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def run_demo(kubeconfig: str, namespace: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "USE_EXISTING_CLUSTER": "true",
        "KUBECONFIG": kubeconfig,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    }
    argv = [sys.executable, str(REPO / "hack" / "demo.py"), "--dir", str(directory)]
    argv += ["--namespace", namespace, "--without-servers"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)


def test_demo_stops_when_another_operator_acts_on_its_namespace(
    kubeconfig: str, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    # Another operator already watches the namespace (and does not allow the demo's
    # emulator: left alone, it would mark the demo's LarkApps DomainNotAllowed).
    operator_factory([namespace], env={"HOSTNAME": "foreign-operator"})
    proc = run_demo(kubeconfig, namespace, tmp_path / "dev")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"another operator is acting on namespace {namespace!r}" in out, out
    assert "timed out" not in out, out  # said at once, not after a confusing wait
    assert "hack/demo.py --namespace NAME" in out
    assert "--- $ kubectl get larkapps" not in out  # no mixed-up results shown
    assert not (tmp_path / "dev" / "demo-pids.json").exists()  # and it cleaned up


def test_demo_stops_when_a_lark_operator_lease_is_held(
    kube: Kube, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    """An operator in HA mode watching all namespaces: its leader Lease is held, renewed."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lark-operator", "namespace": namespace},
        "spec": {
            "holderIdentity": "lark-operator-7d9f-abcde",
            "leaseDurationSeconds": 300,  # renewed "now" for as long as the test runs
            "acquireTime": now,
            "renewTime": now,
        },
    }
    kube.apply(lease)
    proc = run_demo(kubeconfig, f"{namespace}-demo", tmp_path / "dev")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"Lease {namespace}/lark-operator is held by 'lark-operator-7d9f-abcde'" in out, out
