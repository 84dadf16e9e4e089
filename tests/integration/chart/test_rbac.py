"""The chart's RBAC, asked of the real apiserver with `kubectl auth can-i --as` the
ServiceAccount: everything the operator does is allowed, and what it must not do is not."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.helpers.kube import Kube
from tests.integration.chart.conftest import Helm

pytestmark = pytest.mark.integration

LARKAPPS = "larkapps.larkservice.io"
CLUSTER_LARKAPPS = "clusterlarkapps.larkservice.io"
WORKLOADS = ("deployments.apps", "statefulsets.apps", "daemonsets.apps")


@dataclass(frozen=True)
class Check:
    verb: str
    resource: str  # resource[/name]
    namespace: str | None  # None: cluster-scoped; "*": all namespaces
    subresource: str | None = None

    def __str__(self) -> str:
        where = {None: "cluster", "*": "all namespaces"}.get(self.namespace, self.namespace)
        sub = f" (subresource {self.subresource})" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub} in {where}"


def can(kube: Kube, user: str, check: Check) -> bool:
    args = ["auth", "can-i", check.verb, check.resource, f"--as={user}"]
    if check.subresource:
        args.append(f"--subresource={check.subresource}")
    if check.namespace == "*":
        args.append("--all-namespaces")
    elif check.namespace:
        args += ["-n", check.namespace]
    proc = kube.kubectl(*args, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {proc.stdout} {proc.stderr}"
    return answer == "yes"


def verify(kube: Kube, user: str, allowed: list[Check], denied: list[Check]) -> None:
    checks = [(c, True) for c in allowed] + [(c, False) for c in denied]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda cw: can(kube, user, cw[0]), checks))
    wrong = [
        f"{'MISSING' if want else 'EXCESS '}: {c}"
        for (c, want), got in zip(checks, answers, strict=True)
        if got != want
    ]
    assert not wrong, "\n".join(wrong)


def operator_needs(ns: str) -> list[Check]:
    """Everything the operator does in a namespace it serves (kube.py, controller.py, kopf)."""
    return [
        *(Check(v, LARKAPPS, ns) for v in ("get", "list", "watch", "patch")),
        Check("patch", f"{LARKAPPS}/app", ns, subresource="status"),
        *(
            Check(v, "secrets", ns)
            for v in ("get", "list", "watch", "create", "update", "patch", "delete")
        ),
        Check("create", "events", ns),
        # target.rolloutRestart: read a workload's pod template, set one annotation.
        *(Check(v, w, ns) for w in WORKLOADS for v in ("get", "patch")),
    ]


# Cluster-wide in both modes: ClusterLarkApps (read, and their status), namespaces' labels
# (allowedNamespaces.selector; kopf's namespace matching in namespaced mode), CRDs (kopf).
CLUSTER_NEEDS = [
    Check("list", CLUSTER_LARKAPPS, None),
    Check("watch", CLUSTER_LARKAPPS, None),
    Check("patch", f"{CLUSTER_LARKAPPS}/shared", None, subresource="status"),
    Check("list", "namespaces", None),
    Check("watch", "namespaces", None),
    Check("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    Check("watch", "customresourcedefinitions.apiextensions.k8s.io", None),
]


def never(ns: str) -> list[Check]:
    """What the operator must not be able to do in any namespace."""
    return [
        *(Check(v, LARKAPPS, ns) for v in ("create", "update", "delete", "deletecollection")),
        Check("update", f"{LARKAPPS}/app", ns, subresource="status"),
        *(Check(v, "pods", ns) for v in ("get", "list", "create", "delete")),
        Check("create", "pods/exec", ns),
        *(Check(v, "configmaps", ns) for v in ("get", "list", "create", "update")),
        Check("create", "serviceaccounts/token", ns),
        Check("create", "roles.rbac.authorization.k8s.io", ns),
        Check("create", "rolebindings.rbac.authorization.k8s.io", ns),
        Check("create", "leases.coordination.k8s.io", ns),
        Check("update", "events", ns),
        # Secrets one at a time only: nothing sweeps a namespace's Secrets in one request.
        Check("deletecollection", "secrets", ns),
        # Workloads: get and patch only (the admission policy narrows the patch further).
        *(
            Check(v, w, ns)
            for w in WORKLOADS
            for v in ("list", "watch", "create", "update", "delete")
        ),
        Check("patch", "replicasets.apps", ns),
        Check("patch", "jobs.batch", ns),
    ]


LEASES = "leases.coordination.k8s.io"


def leader_election(release_ns: str, lease: str, elsewhere: str) -> tuple[list[Check], list[Check]]:
    """ha.enabled: the one Lease in the release namespace, nothing more."""
    allowed = [
        Check("create", LEASES, release_ns),
        Check("get", f"{LEASES}/{lease}", release_ns),
        Check("update", f"{LEASES}/{lease}", release_ns),
    ]
    denied = [
        Check("update", f"{LEASES}/someone-else", release_ns),
        Check("get", f"{LEASES}/someone-else", release_ns),
        Check("delete", f"{LEASES}/{lease}", release_ns),
        Check("patch", f"{LEASES}/{lease}", release_ns),
        Check("list", LEASES, release_ns),
        Check("watch", LEASES, release_ns),
        Check("create", LEASES, elsewhere),
        Check("update", f"{LEASES}/{lease}", elsewhere),
    ]
    return allowed, denied


NEVER_CLUSTER = [
    *(
        Check(v, "clusterroles.rbac.authorization.k8s.io", None)
        for v in ("get", "list", "watch", "create", "update", "patch", "delete", "bind", "escalate")
    ),
    *(
        Check(v, "clusterrolebindings.rbac.authorization.k8s.io", None)
        for v in ("get", "create", "update", "delete")
    ),
    *(
        Check(v, "customresourcedefinitions.apiextensions.k8s.io", None)
        for v in ("create", "update", "patch", "delete")
    ),
    Check("impersonate", "users", None),
    *(Check(v, CLUSTER_LARKAPPS, None) for v in ("create", "update", "patch", "delete")),
    Check("update", f"{CLUSTER_LARKAPPS}/shared", None, subresource="status"),
    Check("get", "namespaces/default", None),
    Check("patch", "namespaces/default", None),
    Check("create", "namespaces", None),
    Check("delete", "namespaces", None),
    Check("get", "nodes", None),
]


@pytest.fixture(scope="module")
def module_ns(kube: Kube) -> Callable[[str], str]:
    """Makes fresh namespaces (left behind, like the harness's: nothing here can finish
    deleting a namespace)."""

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        kube.kubectl("create", "namespace", name)
        return name

    return make


def test_all_namespaces_mode(helm: Helm, kube: Kube, module_ns: Callable[[str], str]) -> None:
    make = module_ns
    release_ns, other = make("rbac-rel"), make("rbac-any")
    release = f"rb-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-lark-operator"
    helm.install(release, release_ns, {"crds": {"install": False}, "ha": {"enabled": True}})
    user = f"system:serviceaccount:{release_ns}:{fullname}"
    lease_allowed, lease_denied = leader_election(release_ns, fullname, other)
    try:
        verify(
            kube,
            user,
            allowed=[
                *lease_allowed,
                *operator_needs(other),
                *operator_needs(release_ns),
                Check("list", LARKAPPS, "*"),
                Check("watch", LARKAPPS, "*"),
                Check("list", "secrets", "*"),
                Check("watch", "secrets", "*"),
                *CLUSTER_NEEDS,
            ],
            denied=[*lease_denied, *never(other), *NEVER_CLUSTER],
        )
    finally:
        helm.uninstall(release, release_ns)


READ = ("get", "list", "watch")


def test_namespaced_mode(helm: Helm, kube: Kube, module_ns: Callable[[str], str]) -> None:
    make = module_ns
    release_ns = make("rbac-rel")
    a, b, unwatched = make("rbac-a"), make("rbac-b"), make("rbac-x")
    release = f"rb-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-lark-operator"
    helm.install(
        release,
        release_ns,
        {"crds": {"install": False}, "watchNamespaces": [a, b], "ha": {"enabled": True}},
    )
    user = f"system:serviceaccount:{release_ns}:{fullname}"
    try:
        lease_allowed, lease_denied = leader_election(release_ns, fullname, a)
        allowed = [*operator_needs(a), *operator_needs(b), *lease_allowed, *CLUSTER_NEEDS]
        # The cluster resource namespace (the release namespace here): ClusterLarkApps'
        # App Secrets, read only; "default": ClusterLarkApps' Events, created only.
        allowed += [Check(v, "secrets", release_ns) for v in ("get", "list", "watch")]
        allowed += [Check("create", "events", "default")]
        denied = [*never(a), *never(b), *NEVER_CLUSTER, *lease_denied]
        for ns in (unwatched, release_ns):
            # Nothing else where it does not watch, its own namespace included.
            denied += [
                c
                for c in operator_needs(ns)
                if not (ns == release_ns and c.resource == "secrets" and c.verb in READ)
            ]
        denied += [Check(v, "secrets", release_ns) for v in ("create", "update", "patch", "delete")]
        denied += [Check("create", "events", release_ns), Check("get", "secrets", "default")]
        denied += [
            Check("list", LARKAPPS, "*"),
            Check("watch", LARKAPPS, "*"),
            Check("list", "secrets", "*"),
            Check("watch", "secrets", "*"),
            Check("get", f"namespaces/{a}", None),
        ]
        verify(kube, user, allowed, denied)
    finally:
        helm.uninstall(release, release_ns)
