"""values.schema.json: bad values are refused by helm before anything reaches a cluster,
with a message that names the field; good variations pass."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.chart.conftest import Helm

pytestmark = pytest.mark.integration

# (case id, values, text the error must contain)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-word", {"replicas": "two"}, "replicas"),
    ("replicas-2-without-ha", {"replicas": 2}, "replicas"),
    ("replicas-negative", {"replicas": -1}, "replicas"),
    ("ha-replicas-1", {"ha": {"enabled": True, "replicas": 1}}, "ha"),
    ("ha-enabled-string", {"ha": {"enabled": "yes"}}, "ha"),
    ("ha-leaseDuration-words", {"ha": {"leaseDuration": "fifteen"}}, "leaseDuration"),
    ("ha-retryPeriod-zero", {"ha": {"retryPeriod": 0}}, "retryPeriod"),
    ("logFormat-xml", {"logFormat": "xml"}, "logFormat"),
    ("logLevel-verbose", {"logLevel": "verbose"}, "logLevel"),
    ("watchNamespaces-string", {"watchNamespaces": "team-a"}, "watchNamespaces"),
    ("watchNamespaces-bad-name", {"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ("watchNamespaces-duplicate", {"watchNamespaces": ["a", "a"]}, "watchNamespaces"),
    ("allowedBaseUrls-ftp", {"allowedBaseUrls": ["ftp://open.example.com"]}, "allowedBaseUrls"),
    ("pullPolicy", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ("image-digest", {"image": {"digest": "latest"}}, "digest"),
    ("image-repository-empty", {"image": {"repository": ""}}, "repository"),
    ("crds-install-string", {"crds": {"install": "true"}}, "install"),
    ("healthPort-too-big", {"healthPort": 70000}, "healthPort"),
    ("healthPort-string", {"healthPort": "9091"}, "healthPort"),
    ("service-type", {"service": {"type": "ExternalName"}}, "type"),
    ("serviceMonitor-interval", {"serviceMonitor": {"interval": "30 seconds"}}, "interval"),
    ("extraArgs-not-strings", {"extraArgs": [1]}, "extraArgs"),
    ("env-without-name", {"env": [{"value": "x"}]}, "env"),
    ("typo-top-level", {"watchNamespace": ["a"]}, "watchNamespace"),
    ("typo-nested", {"serviceMonitor": {"enable": True}}, "enable"),
    ("admissionPolicy-string", {"admissionPolicy": {"enabled": "no"}}, "enabled"),
    ("admissionPolicy-typo", {"admissionPolicy": {"enable": False}}, "enable"),
    ("probe-unknown-field", {"livenessProbe": {"httpGet": {"path": "/"}}}, "httpGet"),
]

GOOD: list[tuple[str, dict[str, Any]]] = [
    ("replicas-0", {"replicas": 0}),
    ("ha-3", {"ha": {"enabled": True, "replicas": 3, "leaseName": "lark.example"}}),
    ("ha-timings", {"ha": {"leaseDuration": "20s", "renewDeadline": 12, "retryPeriod": "2.5"}}),
    ("log-text-debug", {"logFormat": "text", "logLevel": "DEBUG"}),
    ("urls", {"allowedBaseUrls": ["https://open.example.com", "http://10.0.0.5:8080/base"]}),
    ("digest", {"image": {"digest": "sha256:" + "0" * 64}}),
    ("global", {"global": {"imageRegistry": "x"}}),
    ("admissionPolicy-off", {"admissionPolicy": {"enabled": False}}),
]


@pytest.mark.parametrize("values,needle", [(v, n) for _, v, n in BAD], ids=[c for c, _, _ in BAD])
def test_schema_rejects(helm: Helm, values: dict[str, Any], needle: str) -> None:
    proc = helm.template_text(values, check=False)
    assert proc.returncode != 0, f"accepted {values}:\n{proc.stdout[:500]}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("values", [v for _, v in GOOD], ids=[c for c, _ in GOOD])
def test_schema_accepts(helm: Helm, values: dict[str, Any]) -> None:
    helm.template_text(values)


def test_lint_uses_the_schema_too(helm: Helm) -> None:
    from tests.integration.chart.conftest import CHART

    proc = helm.run(
        "lint",
        str(CHART),
        "--kube-version",
        helm.kube_version,
        "--set",
        "logFormat=xml",
        check=False,
    )
    assert proc.returncode != 0
    assert "logFormat" in proc.stdout + proc.stderr
