"""kube-score (a well-known checker of Kubernetes manifests, built like the control plane)
on the chart: every finding it reports is either fixed or documented in docs/install.md
("What kube-score says"). A new finding, or a documented one that no longer shows, fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lark_devenv.binaries import MissingBinary, find
from tests.integration.chart.conftest import Helm

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "install.md"
HA_WITH_POLICY: dict[str, Any] = {
    "ha": {"enabled": True},
    "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}},
}


def _findings(helm: Helm, values: dict[str, Any]) -> set[str]:
    try:
        kube_score = str(find("kube-score"))
    except MissingBinary as e:
        pytest.fail(str(e))
    manifests = helm.template_text(values).stdout
    out = subprocess.run(
        [kube_score, "score", "-o", "json", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = set()
    for obj in json.loads(out.stdout):
        for check in obj["checks"]:
            if check["grade"] < 10 and not check["skipped"]:
                found.add(f"{obj['type_meta']['kind']}/{check['check']['id']}")
    return found


def _documented(mode: str) -> set[str]:
    """Rows `| kind/check-id | default | ha+networkPolicy | why |` of docs/install.md."""
    rows = re.findall(
        r"^\| `([A-Za-z]+/[a-z0-9-]+)` \| (yes|no) \| (yes|no) \|", DOC.read_text(), re.M
    )
    column = 1 if mode == "default" else 2
    return {row[0] for row in rows if row[column] == "yes"}


def test_default_install_findings_are_the_documented_ones(helm: Helm) -> None:
    assert _findings(helm, {}) == _documented("default")


def test_ha_with_a_network_policy_leaves_only_the_documented_findings(helm: Helm) -> None:
    assert _findings(helm, HA_WITH_POLICY) == _documented("ha")
    assert len(_documented("ha")) <= 1, "HA with a NetworkPolicy is the recommended install"
