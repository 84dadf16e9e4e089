"""cli/cluster.py: which kubeconfig and context the CLI uses (the loader itself:
tests/unit/kube)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lark_operator.cli import cluster
from tests.unit.kube.conftest import write_kubeconfig


def test_connect_uses_the_loader_and_its_errors_are_cluster_errors(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "cfg", user={"token": "t"}, namespace="team")
    conn = cluster.connect(kubeconfig=path, context="ctx")
    assert (conn.context, conn.namespace, conn.client().server) == ("ctx", "team", "https://c:6443")
    with pytest.raises(cluster.ClusterError, match="context 'nope' is not in the kubeconfig"):
        cluster.connect(kubeconfig=path, context="nope")
