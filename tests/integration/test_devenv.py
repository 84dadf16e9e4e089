"""`lark-operator dev up|status|down` as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.procs import SCRIPT

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
