"""The chart's store-app pieces (events.*): off by default (the operator serves no
callbacks); on: the events port on the container, a Service, an optional Ingress for
/lark/events only, an optional NetworkPolicy, and in namespaced mode the Secrets rules for
the ticket Secrets in the release namespace — rendered, applied server-side (dry run), and
the RBAC checked with `kubectl auth can-i`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.helpers.kube import Kube
from tests.integration.chart.conftest import Helm, by_kind, one
from tests.integration.chart.test_rbac import Check, verify
from tests.integration.chart.test_rbac import module_ns as module_ns  # the fixture
from tests.integration.chart.test_render import release_namespace as release_namespace

pytestmark = pytest.mark.integration
FULL = "lo-lark-operator"
ON = {
    "events": {
        "enabled": True,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "lark-events.example.com",
            "tls": [{"secretName": "lark-events-tls", "hosts": ["lark-events.example.com"]}],
        },
    },
    "networkPolicy": {
        "enabled": True,
        "apiServer": {"cidrs": ["10.0.0.1/32"]},
        "eventsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
        ],
    },
}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_off_by_default_the_operator_serves_no_callbacks(helm: Helm) -> None:
    docs = helm.template({})
    args = container(docs)["args"]
    assert args[args.index("--events-port") + 1] == "0"
    assert not by_kind(docs, "Ingress") and not by_kind(docs, "NetworkPolicy")
    assert [s["metadata"]["name"] for s in by_kind(docs, "Service")] == [FULL]


def test_on_service_ingress_and_network_policy(
    helm: Helm, kube: Kube, chart_crds: None, release_namespace: str
) -> None:
    docs = helm.template(ON)
    c = container(docs)
    assert c["args"][c["args"].index("--events-port") + 1] == "9092"
    assert {"name": "http-events", "containerPort": 9092, "protocol": "TCP"} in c["ports"]
    svc = next(s for s in by_kind(docs, "Service") if s["metadata"]["name"] == f"{FULL}-events")
    assert svc["spec"]["ports"] == [
        {"name": "http-events", "port": 80, "targetPort": "http-events", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    ing = one(docs, "Ingress")["spec"]
    assert ing["ingressClassName"] == "nginx" and ing["tls"][0]["secretName"] == "lark-events-tls"
    (rule,) = ing["rules"]
    assert rule["host"] == "lark-events.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/lark/events", "Exact")
    assert path["backend"]["service"] == {"name": f"{FULL}-events", "port": {"name": "http-events"}}
    pol = one(docs, "NetworkPolicy")["spec"]
    (events_rule,) = pol["ingress"]  # no metricsFrom given: nothing else reaches the pods
    assert events_rule["ports"] == [{"port": "http-events", "protocol": "TCP"}]
    assert events_rule["from"] == ON["networkPolicy"]["eventsFrom"]
    for doc in (svc, one(docs, "Ingress"), one(docs, "NetworkPolicy")):
        applied = kube.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc), check=False
        )
        assert applied.returncode == 0, applied.stderr

    # No peers given: nothing may reach the events port (an empty `from` admits everyone).
    policy = {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}}
    closed = helm.template({"events": {"enabled": True}, "networkPolicy": policy})
    assert not one(closed, "NetworkPolicy")["spec"]["ingress"]


def test_namespaced_mode_grants_the_ticket_secrets_in_the_release_namespace(
    helm: Helm, kube: Kube, module_ns: Callable[[str], str]
) -> None:
    release_ns, watched = module_ns("ev-rel"), module_ns("ev-a")
    release = f"ev-{uuid.uuid4().hex[:6]}"
    helm.install(
        release,
        release_ns,
        {"crds": {"install": False}, "watchNamespaces": [watched], "events": {"enabled": True}},
    )
    user = f"system:serviceaccount:{release_ns}:{release}-lark-operator"
    try:
        secrets = [
            Check(v, "secrets", release_ns) for v in ("get", "list", "watch", "create", "update")
        ]
        denied = [Check(v, "secrets", release_ns) for v in ("delete", "patch")]
        denied += [Check("list", "larkapps.larkservice.io", release_ns)]
        verify(kube, user, secrets, denied)
    finally:
        helm.uninstall(release, release_ns)
