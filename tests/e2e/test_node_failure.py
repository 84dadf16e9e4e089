"""A node whose start fails half-way undoes what it did: by then it has made its bridge and
cgroups, started its namespaces and containerd. (Runs before test_operator_on_a_node.py,
whose node must not be up: there is one node per machine.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from lark_devenv.controlplane import ControlPlane
from tests.e2e.conftest import assert_host_restored
from tests.e2e.host import HostState
from tests.e2e.node import Images, Node, NodeError
from tests.helpers.kube import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_node_that_fails_to_start_leaves_the_host_as_it_was(
    host_before: HostState, images: Images, tmp_path: Path
) -> None:
    broken = tmp_path / "images"
    broken.mkdir()
    for name in ("pause", "pause.tar", "operator.id"):
        (broken / name).symlink_to(images.dir / name)
    (broken / "operator.tar").write_bytes(b"not an image archive")
    cp = ControlPlane(tmp_path / "controlplane", nodes=True)
    cp.up(timeout=90)
    logs = tmp_path / "logs"
    try:
        node = Node(cp, Kube(str(cp.kubeconfig)), Images(broken), logs)
        with pytest.raises(NodeError, match="ctr images import"):
            node.up()
    finally:
        cp.down()
    assert "containerd successfully booted" in (logs / "containerd.log").read_text()
    assert_host_restored(host_before)
