"""`helm lint` and `helm template` for every combination of the chart's toggles, each
render checked for what it must contain and applied with `kubectl apply --dry-run=server`
against the real apiserver."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.kube import Kube
from tests.integration.chart.conftest import (
    CHART,
    CLUSTER_CRD_NAME,
    CRD_FILE,
    CRD_NAME,
    Helm,
    Ref,
    by_kind,
    one,
    refs,
)

pytestmark = pytest.mark.integration

RELEASE, NAMESPACE = "lo", "lark-system"
FULLNAME = f"{RELEASE}-lark-operator"
CLUSTER_NAME = f"{NAMESPACE}-{FULLNAME}"
STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)


@dataclass(frozen=True)
class Toggles:
    crds: bool
    namespaced: bool
    ha: bool
    service_monitor: bool
    prometheus_rule: bool
    dashboard: bool

    @property
    def id(self) -> str:
        names = ("crds", "ns", "ha", "sm", "rule", "dash")
        return "-".join(("+" if on else "-") + n for n, on in zip(names, self.flags, strict=True))

    @property
    def flags(self) -> tuple[bool, ...]:
        return (
            self.crds,
            self.namespaced,
            self.ha,
            self.service_monitor,
            self.prometheus_rule,
            self.dashboard,
        )

    def values(self, watch: list[str]) -> dict[str, Any]:
        return {
            "crds": {"install": self.crds},
            "watchNamespaces": watch if self.namespaced else [],
            "ha": {"enabled": self.ha},
            "serviceMonitor": {"enabled": self.service_monitor},
            "prometheusRule": {"enabled": self.prometheus_rule},
            "dashboard": {"enabled": self.dashboard},
        }

    def expected(self, watch: list[str]) -> set[Ref]:
        """Every object the chart must render for these toggles, and nothing else."""
        out = {
            Ref("ServiceAccount", NAMESPACE, FULLNAME),
            Ref("Service", NAMESPACE, FULLNAME),
            Ref("Deployment", NAMESPACE, FULLNAME),
            Ref("ClusterRole", None, CLUSTER_NAME),
            Ref("ClusterRoleBinding", None, CLUSTER_NAME),
            # admissionPolicy.enabled (default): in both modes.
            Ref("ValidatingAdmissionPolicy", None, CLUSTER_NAME),
            Ref("ValidatingAdmissionPolicyBinding", None, CLUSTER_NAME),
            Ref("ValidatingAdmissionPolicy", None, f"{CLUSTER_NAME}-workloads"),
            Ref("ValidatingAdmissionPolicyBinding", None, f"{CLUSTER_NAME}-workloads"),
        }
        if self.crds:
            out.add(Ref("CustomResourceDefinition", None, CRD_NAME))
            out.add(Ref("CustomResourceDefinition", None, CLUSTER_CRD_NAME))
        if self.namespaced:
            for ns in watch:
                out |= {Ref("Role", ns, FULLNAME), Ref("RoleBinding", ns, FULLNAME)}
            # App Secrets of ClusterLarkApps (the release namespace by default), and the
            # Events of ClusterLarkApps ("default"): read / create only.
            for ns, suffix in ((NAMESPACE, "cluster-resources"), ("default", "cluster-events")):
                name = f"{CLUSTER_NAME}-{suffix}"
                out |= {Ref("Role", ns, name), Ref("RoleBinding", ns, name)}
        if self.ha:
            out |= {
                Ref("PodDisruptionBudget", NAMESPACE, FULLNAME),
                Ref("Role", NAMESPACE, f"{FULLNAME}-leader-election"),
                Ref("RoleBinding", NAMESPACE, f"{FULLNAME}-leader-election"),
            }
        if self.service_monitor:
            out.add(Ref("ServiceMonitor", NAMESPACE, FULLNAME))
        if self.prometheus_rule:
            out.add(Ref("PrometheusRule", NAMESPACE, FULLNAME))
        if self.dashboard:
            out.add(Ref("ConfigMap", NAMESPACE, f"{FULLNAME}-dashboard"))
        return out


# All 2^6 combinations: they are cheap (a render and a dry-run each), and listing them
# beats arguing which interactions cannot matter.
COMBINATIONS = [Toggles(*flags) for flags in itertools.product((False, True), repeat=6)]


@pytest.fixture(scope="module")
def release_namespace(kube: Kube) -> str:
    if kube.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        kube.kubectl("create", "namespace", NAMESPACE)
    return NAMESPACE


@pytest.fixture(scope="module")
def module_watch_namespaces(kube: Kube) -> list[str]:
    names = [f"rw{i}-{uuid.uuid4().hex[:8]}" for i in (1, 2)]
    for name in names:
        kube.kubectl("create", "namespace", name)
    return names


# --- lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--strict",),
        (
            "--strict",
            "--set",
            "ha.enabled=true,serviceMonitor.enabled=true,prometheusRule.enabled=true,"
            "dashboard.enabled=true,watchNamespaces={a,b},allowedBaseUrls={https://open.example.com}",
        ),
    ],
    ids=["default", "strict", "strict-everything-on"],
)
def test_helm_lint(helm: Helm, extra: tuple[str, ...]) -> None:
    proc = helm.run("lint", str(CHART), "--kube-version", helm.kube_version, *extra)
    assert "0 chart(s) failed" in proc.stdout, proc.stdout
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


# --- every toggle combination --------------------------------------------------------------


@dataclass
class Outcome:
    rendered: subprocess.CompletedProcess[str]
    docs: list[dict[str, Any]]


def _key(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


@pytest.fixture(scope="module")
def outcomes(helm: Helm, module_watch_namespaces: list[str]) -> dict[Toggles, Outcome]:
    def render(t: Toggles) -> Outcome:
        values = t.values(module_watch_namespaces)
        rendered = helm.template_text(values, release=RELEASE, namespace=NAMESPACE, check=False)
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d] if rendered.stdout else []
        return Outcome(rendered, docs)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(COMBINATIONS, pool.map(render, COMBINATIONS), strict=True))


@pytest.fixture(scope="module")
def dry_runs(
    outcomes: dict[Toggles, Outcome], kube: Kube, chart_crds: None, release_namespace: str
) -> dict[str, subprocess.CompletedProcess[str]]:
    """`kubectl apply --dry-run=server` of every distinct object any combination renders.
    A server-side dry-run judges each object on its own (nothing is stored, so one object
    cannot make another pass or fail), so applying the ~20 distinct objects once each
    is the same verdict as applying all 64 renders, at a fraction of the requests."""
    unique = {_key(d): d for o in outcomes.values() for d in o.docs}

    def apply(doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return kube.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc), check=False
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(unique, pool.map(apply, unique.values()), strict=True))


@pytest.mark.parametrize("toggles", COMBINATIONS, ids=[t.id for t in COMBINATIONS])
def test_toggle_combination_renders_and_applies(
    outcomes: dict[Toggles, Outcome],
    dry_runs: dict[str, subprocess.CompletedProcess[str]],
    module_watch_namespaces: list[str],
    toggles: Toggles,
) -> None:
    watch = module_watch_namespaces
    outcome = outcomes[toggles]
    assert outcome.rendered.returncode == 0, outcome.rendered.stderr
    docs = outcome.docs

    assert refs(docs) == toggles.expected(watch)
    assert len(docs) == len(refs(docs)), "an object is rendered twice"
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks labels {missing}"

    _check_deployment(one(docs, "Deployment"), toggles, watch)
    _check_rbac(docs, toggles, watch)
    for crd in by_kind(docs, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    for doc in docs:
        applied = dry_runs[_key(doc)]
        assert applied.returncode == 0, f"{doc['kind']} {doc['metadata']['name']}: {applied.stderr}"
        assert "(server dry run)" in applied.stdout


@pytest.mark.parametrize("toggles", [COMBINATIONS[0], COMBINATIONS[-1]], ids=["all-off", "all-on"])
def test_whole_render_applies_as_one_stream(
    outcomes: dict[Toggles, Outcome], kube: Kube, chart_crds: None, toggles: Toggles
) -> None:
    """What a user does: `helm template ... | kubectl apply --dry-run=server -f -`."""
    outcome = outcomes[toggles]
    applied = kube.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=outcome.rendered.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(outcome.docs), applied.stdout


def _check_deployment(dep: dict[str, Any], t: Toggles, watch: list[str]) -> None:
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    args = c["args"]
    assert args[0] == "run"
    if t.namespaced:
        assert "--all-namespaces" not in args
        assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == watch
    else:
        assert "--all-namespaces" in args and "--namespace" not in args
    assert args[args.index("--log-format") + 1] == "json"
    assert args[args.index("--health-port") + 1] == "9091"
    assert args[args.index("--cluster-resource-namespace") + 1] == NAMESPACE
    if t.ha:
        assert spec["replicas"] == 2
        assert "--leader-elect" in args
        assert args[args.index("--leader-elect-namespace") + 1] == NAMESPACE
        assert args[args.index("--leader-elect-name") + 1] == FULLNAME
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert pod["affinity"]["podAntiAffinity"]
    else:
        assert spec["replicas"] == 1
        assert not [a for a in args if a.startswith("--leader-elect")]
        assert spec["strategy"]["type"] == "Recreate"

    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    for probe in ("livenessProbe", "readinessProbe"):
        path = "/livez" if probe == "livenessProbe" else "/readyz"
        assert c[probe]["httpGet"] == {"path": path, "port": "http-metrics"}
    assert c["ports"] == [{"name": "http-metrics", "containerPort": 9091, "protocol": "TCP"}]


def _check_rbac(docs: list[dict[str, Any]], t: Toggles, watch: list[str]) -> None:
    cluster_rules = one(docs, "ClusterRole")["rules"]
    cluster_resources = {r for rule in cluster_rules for r in rule["resources"]}
    # Cluster-wide in both modes: read-only scanning (CRDs, namespaces' labels, the
    # ClusterLarkApps) and the ClusterLarkApps' status.
    cluster_wide = {"customresourcedefinitions", "namespaces", "clusterlarkapps"}
    for rule in cluster_rules:
        if set(rule["resources"]) <= cluster_wide:
            assert set(rule["verbs"]) == {"list", "watch"}, rule
        if "clusterlarkapps/status" in rule["resources"]:
            assert rule["resources"] == ["clusterlarkapps/status"] and rule["verbs"] == ["patch"]
    per_namespace = {"larkapps", "larkapps/status", "secrets", "events"}
    workloads = {"deployments", "statefulsets", "daemonsets"}
    if t.namespaced:
        assert cluster_resources == cluster_wide | {"clusterlarkapps/status"}
        for role in by_kind(docs, "Role"):
            resources = {r for rule in role["rules"] for r in rule["resources"]}
            verbs = {v for rule in role["rules"] for v in rule["verbs"]}
            name = role["metadata"]["name"]
            if name == FULLNAME:
                assert resources == per_namespace | workloads
            elif name == f"{CLUSTER_NAME}-cluster-resources":
                assert (resources, verbs) == ({"secrets"}, {"get", "list", "watch"})
            elif name == f"{CLUSTER_NAME}-cluster-events":
                assert (resources, verbs) == ({"events"}, {"create"})
    else:
        assert cluster_resources == per_namespace | workloads | cluster_wide | {
            "clusterlarkapps/status"
        }
    for rule in [*cluster_rules, *(r for role in by_kind(docs, "Role") for r in role["rules"])]:
        if set(rule["resources"]) & workloads:
            assert set(rule["resources"]) == workloads and rule["verbs"] == ["get", "patch"]
    if t.ha:
        (election,) = [
            r
            for r in by_kind(docs, "Role")
            if r["metadata"]["name"] == f"{FULLNAME}-leader-election"
        ]
        assert election["rules"] == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [FULLNAME],
                "verbs": ["get", "update"],
            },
        ]
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]


# --- contents ------------------------------------------------------------------------------


POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.mark.parametrize(
    "values,sa",
    [
        ({}, FULLNAME),
        ({"watchNamespaces": ["a", "b"]}, FULLNAME),
        ({"serviceAccount": {"name": "lark-bot"}}, "lark-bot"),
        ({"serviceAccount": {"create": False, "name": "shared"}}, "shared"),
    ],
    ids=["all-namespaces", "namespaced", "sa-name", "sa-not-created"],
)
def test_admission_policy_binds_the_operators_service_account(
    helm: Helm, values: dict[str, Any], sa: str
) -> None:
    docs = helm.template(values, namespace="team-a")
    name = f"team-a-{FULLNAME}"
    policy, binding = (named(docs, kind, name) for kind in POLICY_KINDS)
    assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["secrets"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
        }
    ]
    assert spec["matchConditions"] == [
        {
            "name": "operator-service-account",
            "expression": f"request.userInfo.username == 'system:serviceaccount:team-a:{sa}'",
        }
    ]
    # A refused request lands in the operator's log: each message says what is allowed.
    assert len(spec["validations"]) == 5
    for v in spec["validations"]:
        assert v["reason"] == "Forbidden"
    labelled = [v for v in spec["validations"] if "object.type" not in v["expression"]]
    for v in labelled:
        assert "app.kubernetes.io/managed-by=lark-operator" in v["message"], v["message"]
    assert sum('larkservice.io/adopt="true"' in v["message"] for v in spec["validations"]) == 1

    # The second policy: workloads, changed only in the one annotation rolloutRestart sets.
    workloads, wbinding = (named(docs, kind, f"{name}-workloads") for kind in POLICY_KINDS)
    assert wbinding["spec"] == {"policyName": f"{name}-workloads", "validationActions": ["Deny"]}
    assert workloads["spec"]["failurePolicy"] == "Fail"
    assert workloads["spec"]["matchConditions"] == spec["matchConditions"]
    assert workloads["spec"]["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "resources": ["deployments", "statefulsets", "daemonsets"],
            "operations": ["UPDATE"],
        }
    ]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def test_admission_policies_of_two_releases_do_not_clash(helm: Helm) -> None:
    names = {
        doc["metadata"]["name"]
        for ns in ("team-a", "team-b")
        for kind in POLICY_KINDS
        for doc in by_kind(helm.template({"watchNamespaces": [ns]}, namespace=ns), kind)
    }
    assert names == {
        f"{ns}-{FULLNAME}{suffix}" for ns in ("team-a", "team-b") for suffix in ("", "-workloads")
    }


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "namespaced"])
def test_admission_policy_off_renders_none(helm: Helm, namespaced: bool) -> None:
    values = {"admissionPolicy": {"enabled": False}, "watchNamespaces": ["a"] if namespaced else []}
    kinds = {d["kind"] for d in helm.template(values)}
    assert "Deployment" in kinds and not kinds & set(POLICY_KINDS)


def test_admission_policy_needs_kubernetes_1_30(helm: Helm) -> None:
    """admissionregistration.k8s.io/v1 is GA in 1.30: an older cluster, or one that does not
    serve the kind, gets a message that says what to do, not an install that silently lacks
    the policy (or fails on the API)."""

    def render(kube_version: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return helm.run(
            "template", "lo", str(CHART), "--kube-version", kube_version, *extra, check=False
        )

    # As Helm lists a cluster's kinds: webhooks served, ValidatingAdmissionPolicy not.
    without_kind = (
        "--api-versions",
        "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration",
    )
    for refused in (render("1.29.9"), render(helm.kube_version, *without_kind)):
        assert refused.returncode != 0
        assert "admissionPolicy.enabled needs" in refused.stderr, refused.stderr
        assert "GA in Kubernetes 1.30" in refused.stderr, refused.stderr
        assert "set admissionPolicy.enabled=false" in refused.stderr, refused.stderr
    off = render("1.29.9", "--set", "admissionPolicy.enabled=false")
    assert off.returncode == 0, off.stderr
    assert "kind: ValidatingAdmissionPolicy" not in off.stdout
    served = (
        *without_kind,
        "--api-versions",
        "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
    )
    for ok in (render("1.30.0"), render("1.30.0", *served)):
        assert ok.returncode == 0, ok.stderr
        assert "kind: ValidatingAdmissionPolicy\n" in ok.stdout


def test_crd_is_the_repository_crd(helm: Helm) -> None:
    """One source of truth: the chart's CRDs are crds/*.yaml, plus Helm's metadata."""
    crds = {
        c["metadata"]["name"]: c for c in by_kind(helm.template({}), "CustomResourceDefinition")
    }
    assert set(crds) == {CRD_NAME, CLUSTER_CRD_NAME}
    for path in (CRD_FILE, CRD_FILE.parent / "clusterlarkapps.yaml"):
        source = yaml.safe_load(path.read_text())
        crd = crds[source["metadata"]["name"]]
        assert crd["spec"] == source["spec"]
        for key, value in source["metadata"]["labels"].items():
            assert crd["metadata"]["labels"][key] == value


def test_crd_keep_off_drops_the_annotation(helm: Helm) -> None:
    crds = by_kind(helm.template({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert len(crds) == 2
    for crd in crds:
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_crd_extra_annotations(helm: Helm) -> None:
    extra = {"argocd.argoproj.io/sync-options": "Prune=false"}
    crds = by_kind(helm.template({"crds": {"annotations": extra}}), "CustomResourceDefinition")
    assert len(crds) == 2
    for crd in crds:
        assert crd["metadata"]["annotations"] == {**extra, "helm.sh/resource-policy": "keep"}


def test_rules_and_dashboard_are_the_files(helm: Helm) -> None:
    docs = helm.template(
        {
            "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
            "dashboard": {"enabled": True, "namespace": "grafana"},
        }
    )
    rule = one(docs, "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == {"groups": alerts["groups"]}
    assert rule["metadata"]["labels"]["release"] == "prom"
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert json.loads(cm["data"]["lark-operator.json"]) == dashboard


def test_service_monitor_scrapes_the_metrics_port(helm: Helm) -> None:
    docs = helm.template({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service")
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    # The alerts aggregate by the LarkApp's own `namespace` label.
    assert endpoint["honorLabels"] is True
    assert sm["metadata"]["labels"]["release"] == "prom"
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()
    assert svc["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9091, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"].items() <= (
        one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_args_env_and_scheduling_from_values(helm: Helm) -> None:
    values = {
        "logFormat": "text",
        "logLevel": "DEBUG",
        "allowedBaseUrls": ["https://open.example.com", "http://10.0.0.5:8080"],
        "clusterResourceNamespace": "lark-credentials",
        "extraArgs": ["--metrics-port", "9092"],
        "env": [{"name": "LARK_OPERATOR_API_RATE", "value": "20"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "podAnnotations": {"example.com/scrape": "false"},
        "image": {"repository": "registry.example.com/lark-operator", "tag": "dev"},
    }
    dep = one(helm.template(values), "Deployment")
    pod = dep["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    assert c["args"] == [
        "run",
        "--all-namespaces",
        "--health-port",
        "9091",
        "--log-format",
        "text",
        "--log-level",
        "DEBUG",
        "--allowed-base-url",
        "https://open.example.com",
        "--allowed-base-url",
        "http://10.0.0.5:8080",
        "--events-port",
        "0",  # events.enabled false: no store-app callbacks served
        "--cluster-resource-namespace",
        "lark-credentials",
        "--metrics-port",
        "9092",
    ]
    assert {"name": "LARK_OPERATOR_API_RATE", "value": "20"} in c["env"]
    assert c["env"][0]["name"] == "POD_ID"  # kopf's identity without a passwd lookup
    assert c["image"] == "registry.example.com/lark-operator:dev"
    assert pod["spec"]["nodeSelector"] == values["nodeSelector"]
    assert pod["spec"]["tolerations"] == values["tolerations"]
    assert pod["spec"]["affinity"] == values["affinity"]
    assert pod["metadata"]["annotations"] == values["podAnnotations"]


def test_default_image_is_the_app_version(helm: Helm) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (c,) = one(helm.template({}), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"lark-operator:{chart['appVersion']}"
    digest = "sha256:" + "a" * 64
    (c,) = one(helm.template({"image": {"digest": digest}}), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"]
    assert c["image"] == f"lark-operator@{digest}"


def test_notes_tell_the_next_step(helm: Helm, release_namespace: str) -> None:
    # `helm template` does not render NOTES.txt; `helm install --dry-run` does.
    out = helm.run(
        "install",
        "notes",
        str(CHART),
        "--dry-run=server",
        "--namespace",
        NAMESPACE,
        "--set",
        "watchNamespaces={team-a},crds.install=false",
    ).stdout
    notes = out.split("\nNOTES:\n", 1)[1]
    for expected in (
        "kubectl -n team-a create secret generic my-lark-app",
        "kind: LarkApp",
        "appSecretRef:",
        "kubectl -n team-a get larkapps",
        "kubectl lark status -n team-a",
        "crds.install=false",
    ):
        assert expected in notes, notes


def test_package_carries_the_crd_through_the_symlink(helm: Helm, tmp_path: Path) -> None:
    """files/larkapps.yaml is a symlink to crds/larkapps.yaml; `helm package` must store the
    file itself, or an installed-from-repository chart would have no CRD."""
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (tgz,) = tmp_path.glob("lark-operator-*.tgz")
    for name in ("larkapps.yaml", "clusterlarkapps.yaml"):
        assert (CHART / "files" / name).is_symlink()
        with tarfile.open(tgz) as tar:
            member = tar.getmember(f"lark-operator/files/{name}")
            assert member.isfile()
            packaged = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
            names = tar.getnames()
        assert packaged == (CRD_FILE.parent / name).read_text()
    assert "lark-operator/values.schema.json" in names


def test_without_the_symlink_target_the_render_says_why(helm: Helm, tmp_path: Path) -> None:
    """Flux's GitRepository artifacts drop symlinks (docs/install.md): with crds.install the
    render must stop with a message that names the link, and without it still work."""
    copy = tmp_path / "lark-operator"
    shutil.copytree(CHART, copy, symlinks=True)
    for link in ("larkapps.yaml", "clusterlarkapps.yaml"):
        (copy / "files" / link).unlink()
    base = ["template", "lo", str(copy), "--kube-version", helm.kube_version]
    failed = helm.run(*base, check=False)
    assert failed.returncode != 0
    assert "files/larkapps.yaml is not a CustomResourceDefinition" in failed.stderr
    docs = list(yaml.safe_load_all(helm.run(*base, "--set", "crds.install=false").stdout))
    assert "CustomResourceDefinition" not in {d["kind"] for d in docs if d}
