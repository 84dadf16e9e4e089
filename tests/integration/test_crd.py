"""The LarkApp CRD against the real apiserver: validation at apply time, defaults,
explain, printer columns, and status fields that survive the schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lark_operator.models import LarkAppSpec
from tests.helpers.kube import Kube

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "apiVersion": "larkservice.io/v1alpha1",
    "kind": "LarkApp",
    "metadata": {"name": "app"},
    "spec": {"appId": "cli_a1b2c3", "appSecretRef": {"name": "lark-secret"}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()
_STORE = {
    "encryptKeyRef": {"name": "store-keys"},
    "verificationTokenRef": {"name": "store-keys"},
    "tenants": {"all": True},
}


def _store(tenants: dict[str, Any]) -> dict[str, Any]:
    return _with(
        "spec", {**GOOD["spec"], "appType": "Store", "store": {**_STORE, "tenants": tenants}}
    )


# (case id, manifest, field the error must name)
MALFORMED = [
    ("missing-appId", _with("spec.appId", _DELETE), "spec.appId"),
    ("appId-pattern", _with("spec.appId", "app_123"), "spec.appId"),
    ("appId-too-long", _with("spec.appId", "cli_" + "a" * 61), "spec.appId"),
    ("missing-secretRef", _with("spec.appSecretRef", _DELETE), "spec.appSecretRef"),
    (
        "secretRef-bad-name",
        _with("spec.appSecretRef", {"name": "Bad_Name"}),
        "spec.appSecretRef.name",
    ),
    ("renewBefore-45m", _with("spec.refresh", {"renewBefore": "45m"}), "spec.refresh.renewBefore"),
    ("renewBefore-0s", _with("spec.refresh", {"renewBefore": "0s"}), "spec.refresh.renewBefore"),
    (
        "renewBefore-garbage",
        _with("spec.refresh", {"renewBefore": "soon"}),
        "spec.refresh.renewBefore",
    ),
    ("jitter-2", _with("spec.refresh", {"jitter": 2}), "spec.refresh.jitter"),
    ("jitter-negative", _with("spec.refresh", {"jitter": -0.1}), "spec.refresh.jitter"),
    ("domain-word", _with("spec.domain", "larksuite"), "spec.domain"),
    ("domain-no-scheme", _with("spec.domain", "open.example.com"), "spec.domain"),
    ("domain-ftp", _with("spec.domain", "ftp://open.example.com"), "spec.domain"),
    (
        "creationPolicy",
        _with("spec.target", {"creationPolicy": "Adopt"}),
        "spec.target.creationPolicy",
    ),
    (
        "deletionPolicy",
        _with("spec.target", {"deletionPolicy": "Keep"}),
        "spec.target.deletionPolicy",
    ),
    ("target-secretName", _with("spec.target", {"secretName": "UPPER"}), "spec.target.secretName"),
    (
        "label-value-unicode",
        _with("spec.target", {"labels": {"team": "ünïcode"}}),
        "spec.target.labels.team",
    ),
    (
        "label-value-dash",
        _with("spec.target", {"labels": {"team": "-p1"}}),
        "spec.target.labels.team",
    ),
    ("label-key-space", _with("spec.target", {"labels": {"bad key": "x"}}), "spec.target.labels"),
    (
        "label-key-two-slashes",
        _with("spec.target", {"labels": {"a/b/c": "x"}}),
        "spec.target.labels",
    ),
    ("no-token-type", _with("spec.tokens", {"tenant": False, "app": False}), "spec.tokens"),
    ("probe-interval", _with("spec.probes", {"interval": "1s"}), "spec.probes.interval"),
    (
        "probe-timeout-ge-interval",
        _with("spec.probes", {"interval": "10s", "timeout": "20s"}),
        "spec.probes",
    ),
    (
        "postgres-missing-ref",
        _with("spec.probes", {"postgres": {}}),
        "spec.probes.postgres.dsnSecretRef",
    ),
    (
        "queues-without-management",
        _with(
            "spec.probes", {"rabbitmq": {"urlSecretRef": {"name": "mq"}, "queues": [{"name": "q"}]}}
        ),
        "spec.probes.rabbitmq",
    ),
    ("suspend-string", _with("spec.suspend", "yes"), "spec.suspend"),
    # Store apps: spec.store iff appType Store; tenants exactly one of keys / all.
    ("store-without-store", _with("spec.appType", "Store"), "spec.store"),
    ("selfbuilt-with-store", _with("spec.store", _STORE), "spec.store"),
    ("appType-word", _with("spec.appType", "Marketplace"), "spec.appType"),
    (
        "store-tenants-both",
        _store({"keys": ["t1"], "all": True}),
        "spec.store.tenants",
    ),
    ("store-tenants-none", _store({}), "spec.store.tenants"),
    ("store-tenants-empty-keys", _store({"keys": []}), "spec.store.tenants"),
    ("store-tenant-key-pattern", _store({"keys": ["a b"]}), "spec.store.tenants.keys"),
    (
        "store-missing-encryptKeyRef",
        _with(
            "spec",
            {
                **GOOD["spec"],
                "appType": "Store",
                "store": {"verificationTokenRef": {"name": "k"}, "tenants": {"all": True}},
            },
        ),
        "spec.store.encryptKeyRef",
    ),
]


@pytest.mark.parametrize(("case", "manifest", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_larkapp_is_rejected_naming_the_field(
    kube: Kube, namespace: str, case: str, manifest: dict[str, Any], field: str
) -> None:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"]["namespace"] = namespace
    proc = kube.apply(manifest, check=False)
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert field in proc.stderr, f"{case}: error does not name {field}: {proc.stderr}"
    assert kube.kubectl("get", "larkapps", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_overlong_name_needs_explicit_secret_name(kube: Kube, namespace: str) -> None:
    doc = copy.deepcopy(GOOD)
    doc["metadata"] = {"name": "a" * 250, "namespace": namespace}
    proc = kube.apply(doc, check=False)
    assert proc.returncode != 0
    assert "spec.target.secretName" in proc.stderr
    doc["spec"]["target"] = {"secretName": "short-token"}
    kube.apply(doc)


def test_defaults_are_applied(kube: Kube, namespace: str) -> None:
    doc = copy.deepcopy(GOOD)
    doc["metadata"]["namespace"] = namespace
    kube.apply(doc)
    spec = kube.larkapp(namespace, "app")["spec"]
    assert spec["appSecretRef"]["key"] == "appSecret"
    # No schema default for domain (spec.appRef excludes it): the operator reads an absent
    # domain as feishu.
    assert "domain" not in spec
    assert LarkAppSpec.parse(spec).base_url() == "https://open.feishu.cn"
    assert spec["tokens"] == {"tenant": True, "app": False}
    assert spec["refresh"] == {"renewBefore": "10m", "jitter": 0.1}
    assert spec["target"] == {"creationPolicy": "Owner", "deletionPolicy": "Delete"}
    assert spec["probes"] == {"interval": "30s", "timeout": "5s"}
    assert spec["suspend"] is False


def test_url_domain_is_accepted_by_schema(kube: Kube, namespace: str) -> None:
    doc = _with("spec.domain", "https://open.example.com:8443/base")
    doc["metadata"]["namespace"] = namespace
    kube.apply(doc)


def test_explain_describes_refresh(kube: Kube) -> None:
    out = kube.kubectl("explain", "larkapp.spec.refresh").stdout
    assert "renewBefore" in out and "jitter" in out
    assert "30 minutes" in out  # the why is in the description


def test_printer_columns_and_short_names(kube: Kube, namespace: str) -> None:
    doc = copy.deepcopy(GOOD)
    doc["metadata"]["namespace"] = namespace
    kube.apply(doc)
    header = kube.kubectl("get", "lark", "-n", namespace).stdout.splitlines()[0].split()
    joined = " ".join(header)
    for col in (
        "NAME",
        "APP ID",
        "READY",
        "REASON",
        "TOKEN EXPIRES",
        "POSTGRES",
        "REDIS",
        "RABBITMQ",
        "AGE",
    ):
        assert col in joined, f"{col} missing from {joined}"
    assert kube.kubectl("get", "larkapp", "-n", namespace, "-o", "name").stdout.strip()


FULL_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Degraded",
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Unreachable",
            "message": "PostgreSQL: x",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        },
        {
            "type": "TokenReady",
            "status": "True",
            "reason": "Issued",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        },
    ],
    "token": {
        "secretName": "app-lark-token",
        "expiresAt": "2026-01-01T02:00:00Z",
        "refreshedAt": "2026-01-01T00:00:00Z",
        "nextRefreshAt": "2026-01-01T01:50:00Z",
        "fingerprint": "sha256:0123456789ab",
    },
    "probes": {
        "postgres": {
            "healthy": False,
            "reason": "Unreachable",
            "latencyMs": 1.5,
            "checkedAt": "2026-01-01T00:00:00Z",
            "message": "refused",
            "details": {"version": "15.4"},
        }
    },
    "lastError": {
        "code": 10014,
        "reason": "InvalidCredentials",
        "message": "m",
        "hint": "h",
        "at": "2026-01-01T00:00:00Z",
    },
    "consecutiveFailures": 3,
}


def test_status_fields_are_not_pruned(kube: Kube, namespace: str) -> None:
    doc = copy.deepcopy(GOOD)
    doc["metadata"]["namespace"] = namespace
    kube.apply(doc)
    kube.custom.patch_namespaced_custom_object_status(
        "larkservice.io", "v1alpha1", namespace, "larkapps", "app", {"status": FULL_STATUS}
    )
    assert kube.larkapp(namespace, "app")["status"] == FULL_STATUS


def test_crd_manifest_declares_every_status_field_the_operator_writes() -> None:
    """The status builder's output keys must all be in the schema (else pruned)."""
    from lark_operator.status.build import build_status
    from lark_operator.status.facts import Credentials, ErrorFacts, Observed, TokenFacts

    crd = yaml.safe_load(open("crds/larkapps.yaml"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    obs = Observed(
        generation=2,
        now=1000.0,
        credentials=Credentials("Valid", "ok"),
        token=TokenFacts("s", 2000.0, 900.0, 1500.0, "sha256:ab", True),
        last_error=ErrorFacts("UpstreamUnavailable", "m", 5000, 990.0),
        consecutive_failures=1,
        configured_probes=("postgres",),
        probes={
            "postgres": {
                "healthy": True,
                "reason": "Healthy",
                "latencyMs": 1.0,
                "checkedAt": "x",
                "message": "m",
                "details": {"a": "b"},
            }
        },
    )
    status = build_status(obs, None).to_dict()

    def check(value: Any, node: dict[str, Any], path: str) -> None:
        if isinstance(value, dict) and "properties" in node:
            for k, v in value.items():
                assert k in node["properties"], f"{path}.{k} not declared in the CRD"
                check(v, node["properties"][k], f"{path}.{k}")
        elif isinstance(value, list):
            for item in value:
                check(item, node["items"], path + "[]")

    check(status, schema, "status")


CLUSTER_GOOD: dict[str, Any] = {
    "apiVersion": "larkservice.io/v1alpha1",
    "kind": "ClusterLarkApp",
    "metadata": {"name": "crd-shared"},
    "spec": {
        "appId": "cli_crd01",
        "appSecretRef": {"name": "app"},
        "allowedNamespaces": {"names": ["a"]},
    },
}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"allowedNamespaces": None}, "allowedNamespaces"),
        ({"allowedNamespaces": {}}, "allowedNamespaces needs names and/or a selector"),
        ({"allowedNamespaces": {"names": ["Bad_NS"]}}, "spec.allowedNamespaces.names"),
        (
            {
                "allowedNamespaces": {
                    "selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}
                }
            },
            "In and NotIn need values",
        ),
        ({"appSecretRef": {"name": "app", "namespace": "elsewhere"}}, "namespace"),
    ],
    ids=["no-allowed", "allowed-empty", "bad-name", "in-without-values", "secret-elsewhere"],
)
def test_cluster_larkapp_schema_refuses(kube: Kube, spec: dict[str, Any], field: str) -> None:
    doc = copy.deepcopy(CLUSTER_GOOD)
    doc["spec"].update(spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    out = kube.apply(yaml.safe_dump(doc), check=False)
    assert out.returncode != 0 and field in out.stderr, out.stderr


def test_cluster_larkapp_defaults_and_columns(kube: Kube) -> None:
    doc = copy.deepcopy(CLUSTER_GOOD)
    doc["spec"]["allowedNamespaces"] = {"selector": {}}  # every namespace
    kube.apply(yaml.safe_dump(doc))
    try:
        spec = kube.cluster_larkapp("crd-shared")["spec"]
        assert spec["domain"] == "feishu" and spec["appSecretRef"]["key"] == "appSecret"
        assert spec["refresh"] == {"renewBefore": "10m", "jitter": 0.1}
        header = kube.kubectl("get", "clusterlarkapps", "-o", "wide").stdout.splitlines()[0]
        for column in ("APP ID", "READY", "REASON", "TOKEN EXPIRES", "LARKAPPS", "REFUSED"):
            assert column in header, header
    finally:
        kube.delete_cluster_larkapp("crd-shared")
