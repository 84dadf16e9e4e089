"""GitOps health: the real kstatus library (hack/kstatus, built by `make controlplane`) and a
real Lua 5.1 interpreter (Argo CD's dialect; Debian package lua5.1, installed by .ci/run)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lark_devenv.binaries import find

REPO = Path(__file__).resolve().parents[3]
GITOPS_DOCS = REPO / "docs" / "gitops"

Kstatus = Callable[[Any], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def kstatus() -> Kstatus:
    """Run kstatus on an object, a List, or the JSON text of either; one result per object."""
    binary = str(find("kstatus"))  # MissingBinary says: run `make controlplane`

    def run(objs: Any) -> list[dict[str, Any]]:
        text = objs if isinstance(objs, str) else json.dumps(objs)
        proc = subprocess.run([binary], input=text, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    return run


@pytest.fixture(scope="session")
def lua() -> str:
    found = shutil.which("lua5.1")
    assert found, "lua5.1 not found: apt-get install lua5.1 (.ci/run installs it)"
    return found
