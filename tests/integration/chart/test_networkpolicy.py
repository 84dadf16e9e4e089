"""networkPolicy.enabled: ingress only to the health/metrics port from the peers named,
egress only to DNS, the Kubernetes API, the Open Platform and the probed dependencies
named; accepted by the real apiserver; refused at render time without the API's address."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.helpers.kube import Kube
from tests.integration.chart.conftest import Helm, one

pytestmark = pytest.mark.integration

VALUES: dict[str, Any] = {
    "networkPolicy": {
        "enabled": True,
        "apiServer": {"cidrs": ["10.0.0.1/32"], "port": 6443},
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "extraEgress": [
            {"to": [{"podSelector": {"matchLabels": {"app": "pg"}}}], "ports": [{"port": 5432}]}
        ],
    }
}


def test_the_policy_allows_only_what_the_operator_needs(helm: Helm, kube: Kube) -> None:
    docs = helm.template(VALUES)
    np = one(docs, "NetworkPolicy")
    deployment = one(docs, "Deployment")
    assert np["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = np["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert ingress["from"] == VALUES["networkPolicy"]["metricsFrom"]
    dns, api, platform, pg = np["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"port": 6443, "protocol": "TCP"}],
    }
    assert platform["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert "169.254.0.0/16" in platform["to"][0]["ipBlock"]["except"]  # never the metadata service
    assert pg == VALUES["networkPolicy"]["extraEgress"][0]
    np["metadata"]["namespace"] = "default"  # the release namespace need not exist here
    kube.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(np))


def test_off_by_default_and_refused_without_the_api_address(helm: Helm) -> None:
    assert not [d for d in helm.template({}) if d["kind"] == "NetworkPolicy"]
    out = helm.template_text({"networkPolicy": {"enabled": True}}, check=False)
    assert out.returncode != 0 and "networkPolicy.apiServer.cidrs is required" in out.stderr
