"""The chart's ValidatingAdmissionPolicy in the real apiserver, impersonating the chart's
ServiceAccount: every act the operator must never do to a Secret is refused with the
policy's own message (RBAC allows each of them, so the refusal is the policy's), every act
it needs goes through, other users are untouched, and admissionPolicy.enabled=false takes
the policy away."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from lark_operator.vocabulary.names import LARKAPP_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from tests.helpers.kube import Kube
from tests.helpers.wait import eventually
from tests.integration.chart.conftest import (
    CHART,
    Helm,
    as_user,
    one,
    policy_denial,
    sa_user,
    wait_policy_enforced,
)

pytestmark = pytest.mark.integration

ADOPT = "larkservice.io/adopt"
OWNED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, LARKAPP_LABEL: "app"}
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


@dataclass(frozen=True)
class Messages:
    """The policy's validation messages, as installed."""

    create: str
    change: str  # update of a Secret neither labelled nor marked for adoption
    keep_label: str  # an update that drops (or does not add) the label
    delete: str
    control_plane_type: str  # a service-account or bootstrap token Secret

    @classmethod
    def of(cls, policy: dict[str, Any]) -> Messages:
        by_op: dict[str, str] = {}
        for v in policy["spec"]["validations"]:
            expr = v["expression"]
            if "object.type" in expr:
                by_op["control_plane_type"] = v["message"]
                continue
            op = next(o for o in ("CREATE", "UPDATE", "DELETE") if f"'{o}'" in expr)
            if op == "UPDATE":
                op = "change" if "adoptable" in expr else "keep_label"
            by_op[op.lower()] = v["message"]
        return cls(**by_op)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(
    name: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"k": _b64(name)}}


def _get(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    proc = kube.kubectl("get", "secret", name, "-n", ns, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    return dict(json.loads(proc.stdout))


def _must_get(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    obj = _get(kube, ns, name)
    assert obj is not None, f"Secret {ns}/{name} is gone"
    return obj


def _installed_policy(helm: Helm, release: str, ns: str, suffix: str = "") -> dict[str, Any]:
    """The Secrets policy (suffix ""), or the workloads one ("-workloads")."""
    policies = [
        p
        for p in helm.manifest(release, ns)
        if p["kind"] == "ValidatingAdmissionPolicy"
        and p["metadata"]["name"] == f"{ns}-{release}-lark-operator{suffix}"
    ]
    return one(policies, "ValidatingAdmissionPolicy")


def exercise(kube: Kube, user: str, ns: str, policy: dict[str, Any]) -> None:
    """Every refused and every allowed act of the operator's ServiceAccount in `ns`."""
    name = policy["metadata"]["name"]
    msgs = Messages.of(policy)
    wait_policy_enforced(kube, user, ns, name)

    # RBAC allows the ServiceAccount all of these here: a refusal below is the policy's.
    for verb in ("create", "update", "patch", "delete"):
        can = kube.kubectl("auth", "can-i", verb, "secrets", f"--as={user}", "-n", ns, check=False)
        assert can.stdout.strip() == "yes", f"RBAC does not allow {verb} secrets in {ns}"

    def sa(*args: str, body: dict[str, Any] | None = None) -> Any:
        return as_user(kube, user, ns, *args, input=json.dumps(body) if body else None)

    # Set up as the cluster admin, whom the policy does not match: an unlabelled Secret goes
    # in while the policy is enforced.
    owner_cm = json.loads(
        kube.kubectl("create", "configmap", "owner", "-n", ns, "-o", "json").stdout
    )["metadata"]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_cm["uid"]}
    for body in (
        _secret("db-password"),  # somebody else's Secret
        _secret("token", labels=OWNED, owner=owner),  # one the operator made
        _secret("token-old", labels=OWNED),
        _secret("consenting", annotations={ADOPT: "true"}),  # its owner consents
    ):
        kube.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body))
    unrelated = _must_get(kube, ns, "db-password")
    token = _must_get(kube, ns, "token")
    consenting = _must_get(kube, ns, "consenting")

    def take_over(obj: dict[str, Any]) -> dict[str, Any]:
        """The Secret as the operator would PUT it: its token keys and labels added."""
        out = json.loads(json.dumps(obj))
        out["metadata"]["labels"] = {**(out["metadata"].get("labels") or {}), **OWNED}
        out["data"]["tenant_access_token"] = _b64("t-new")
        return out

    def merge(*args: str) -> tuple[str, ...]:
        return ("patch", "secret", *args[:-1], "--type=merge", "-p", args[-1])

    strip = json.dumps({"metadata": {"labels": {MANAGED_BY_LABEL: None}}})
    relabel = json.dumps({"metadata": {"labels": {MANAGED_BY_LABEL: "helm"}}})
    add_key = json.dumps({"data": {"tenant_access_token": _b64("t-new")}})
    refused = {
        "create an unlabelled Secret": (
            sa("create", "-f", "-", body=_secret("plain")),
            msgs.create,
        ),
        "create a Secret labelled for another manager": (
            sa("create", "-f", "-", body=_secret("other", labels={MANAGED_BY_LABEL: "helm"})),
            msgs.create,
        ),
        "PUT an unrelated Secret (taking it over)": (
            sa("replace", "-f", "-", body=take_over(unrelated)),
            msgs.change,
        ),
        "merge-PATCH an unrelated Secret": (sa(*merge("db-password", add_key)), msgs.change),
        "delete an unrelated Secret": (sa("delete", "secret", "db-password"), msgs.delete),
        "strip the managed-by label": (sa(*merge("token", strip)), msgs.keep_label),
        "relabel to another manager": (sa(*merge("token", relabel)), msgs.keep_label),
        "write a consenting Secret without adding the label": (
            sa(*merge("consenting", add_key)),
            msgs.keep_label,
        ),
        "create a service-account token Secret, labelled as its own": (
            sa(
                "create",
                "-f",
                "-",
                body={
                    **_secret("sa-token", labels=OWNED),
                    "type": "kubernetes.io/service-account-token",
                    "metadata": {
                        "name": "sa-token",
                        "labels": OWNED,
                        "annotations": {"kubernetes.io/service-account.name": "default"},
                    },
                },
            ),
            msgs.control_plane_type,
        ),
    }
    wrong = []
    for what, (proc, message) in refused.items():
        if proc.returncode == 0:
            wrong.append(f"{what}: allowed ({proc.stdout.strip()})")
        elif policy_denial(name) + message not in proc.stderr:
            wrong.append(f"{what}: refused, but not with the policy's message: {proc.stderr}")
    assert not wrong, "\n".join(wrong)
    # Nothing was written: the same object, to the resourceVersion.
    assert _must_get(kube, ns, "db-password") == unrelated
    assert _must_get(kube, ns, "token") == token
    assert _must_get(kube, ns, "consenting") == consenting
    assert _get(kube, ns, "plain") is None and _get(kube, ns, "other") is None

    # What the operator needs: create a labelled Secret (POST), ...
    created = sa("create", "-f", "-", body=_secret("fresh", labels=OWNED))
    assert created.returncode == 0, created.stderr
    # ... replace its own (PUT, as after every refresh), ...
    put = sa("replace", "-f", "-", body=take_over(token))
    assert put.returncode == 0, put.stderr
    assert _must_get(kube, ns, "token")["data"]["tenant_access_token"] == _b64("t-new")
    # ... cut its owner reference (merge PATCH, deletionPolicy Retain), ...
    cut = sa(*merge("token", json.dumps({"metadata": {"ownerReferences": None}})))
    assert cut.returncode == 0, cut.stderr
    assert "ownerReferences" not in _must_get(kube, ns, "token")["metadata"]
    # ... adopt a Secret whose owner consented, labelling it, ...
    adopted = sa("replace", "-f", "-", body=take_over(consenting))
    assert adopted.returncode == 0, adopted.stderr
    assert _must_get(kube, ns, "consenting")["metadata"]["labels"] == OWNED
    # ... and delete its own.
    deleted = sa("delete", "secret", "token-old")
    assert deleted.returncode == 0, deleted.stderr
    assert _get(kube, ns, "token-old") is None


FINGERPRINT = "larkservice.io/token-fingerprint"


def exercise_workloads(kube: Kube, user: str, ns: str, policy: dict[str, Any]) -> None:
    """The workloads policy: the operator's patch on a Deployment may set the pod template
    annotation target.rolloutRestart uses, and change nothing else."""
    name, message = policy["metadata"]["name"], policy["spec"]["validations"][0]["message"]
    kube.create_deployment(ns, "api")

    def patch(body: dict[str, Any], *extra: str) -> Any:
        return as_user(
            kube, user, ns, "patch", "deployment", "api", "--type=merge", "-p", json.dumps(body),
            *extra,
        )  # fmt: skip

    def template(**meta: Any) -> dict[str, Any]:
        return {"spec": {"template": {"metadata": meta}}}

    image = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "evil:1"}]}}}}
    eventually(
        lambda: patch(image, "--dry-run=server").returncode != 0, 30, what="workloads policy"
    )
    refused = {
        "change the image": image,
        "scale to zero": {"spec": {"replicas": 0}},
        "add another pod annotation": template(annotations={"example.com/x": "1"}),
        "change the pod labels": template(labels={"app": "api", "extra": "1"}),
        "run as another ServiceAccount": {
            "spec": {"template": {"spec": {"serviceAccountName": "admin"}}}
        },
    }
    wrong = []
    for what, body in refused.items():
        proc = patch(body)
        if proc.returncode == 0:
            wrong.append(f"{what}: allowed")
        elif policy_denial(name) + message not in proc.stderr:
            wrong.append(f"{what}: refused, but not by the policy: {proc.stderr}")
    assert not wrong, "\n".join(wrong)
    assert kube.deployment(ns, "api").metadata.generation == 1
    # What rolloutRestart does: set the annotation (and later replace it).
    for value in ("sha256:aaaaaaaaaaaa", "sha256:bbbbbbbbbbbb"):
        done = patch(template(annotations={FINGERPRINT: value}))
        assert done.returncode == 0, done.stderr
        annotations = kube.deployment(ns, "api").spec.template.metadata.annotations
        assert annotations == {FINGERPRINT: value}


def test_policy_in_all_namespaces_mode_then_switched_off(
    helm: Helm, kube: Kube, namespace: str
) -> None:
    release_ns = f"vap-rel-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", release_ns)
    release = f"vap-{uuid.uuid4().hex[:6]}"
    user = sa_user(release_ns, f"{release}-lark-operator")
    helm.install(release, release_ns, {"crds": {"install": False}})
    try:
        policy = _installed_policy(helm, release, release_ns)
        # A tenant's namespace, not the release's: RBAC reaches it, the policy guards it.
        exercise(kube, user, namespace, policy)
        workloads = _installed_policy(helm, release, release_ns, "-workloads")
        exercise_workloads(kube, user, namespace, workloads)

        helm.run(
            "upgrade",
            release,
            str(CHART),
            "--namespace",
            release_ns,
            "-f",
            helm.values_file({"crds": {"install": False}, "admissionPolicy": {"enabled": False}}),
        )
        assert not POLICY_KINDS & {d["kind"] for d in helm.manifest(release, release_ns)}
        for kind in POLICY_KINDS:
            name = policy["metadata"]["name"]
            gone = kube.kubectl("get", kind.lower(), name, check=False)
            assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout

        def unguarded() -> bool:
            proc = as_user(
                kube, user, namespace, "create", "secret", "generic", "plain",
                "--from-literal=k=v", "--dry-run=server",
            )  # fmt: skip
            return proc.returncode == 0

        # Only RBAC is left, and it allows what the policy refused.
        eventually(unguarded, timeout=30, what="an unlabelled Secret allowed without the policy")
    finally:
        helm.uninstall(release, release_ns)


def test_policy_in_namespaced_mode_one_per_release(
    helm: Helm, kube: Kube, watch_namespaces: list[str]
) -> None:
    """Two teams, each with a release of the same name in its own namespace watching only
    that namespace: two policies side by side, each bound to its own ServiceAccount."""
    release = f"vap-{uuid.uuid4().hex[:6]}"
    installed = []
    try:
        for ns in watch_namespaces:
            helm.install(release, ns, {"crds": {"install": False}, "watchNamespaces": [ns]})
            installed.append(ns)
        policies = [_installed_policy(helm, release, ns) for ns in watch_namespaces]
        assert len({p["metadata"]["name"] for p in policies}) == 2
        a, b = watch_namespaces
        exercise(kube, sa_user(a, f"{release}-lark-operator"), a, policies[0])
        wait_policy_enforced(
            kube, sa_user(b, f"{release}-lark-operator"), b, policies[1]["metadata"]["name"]
        )
    finally:
        for ns in installed:
            helm.uninstall(release, ns)
