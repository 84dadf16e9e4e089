"""The trust boundary with ClusterLarkApps and rollouts, from the side of someone who may
create LarkApps in one namespace and nothing else: no token from an app that does not
allow the namespace, no way to learn which apps exist elsewhere, no roll of a workload in
another namespace, no kind but Deployment/StatefulSet/DaemonSet, and the schema refusing
what the operator would refuse anyway."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.helpers.wait import eventually
from tests.integration.clusterapps.conftest import ClusterEnv

pytestmark = pytest.mark.integration

APP, SECRET = "cli_boundary01", "s3cret-boundary-value"


def _cred(env: ClusterEnv, ns: str, name: str) -> tuple[str, str, str] | None:
    c = env.condition(ns, name, "CredentialsValid")
    return (c["status"], c["reason"], c["message"]) if c else None


def test_a_namespace_cannot_use_an_app_or_roll_a_workload_it_was_not_given(
    cluster_env: Any,
) -> None:
    env: ClusterEnv = cluster_env({APP: SECRET})
    env.app_secret(SECRET)
    allowed, attacker = env.namespace(), env.namespace()
    env.cluster_app("shared", APP, {"names": [allowed]})
    env.kube.create_deployment(allowed, "victim")  # someone else's workload

    # Naming the app from a namespace it does not allow, and a workload next door.
    restart = [{"kind": "Deployment", "name": "victim"}]
    env.larkapp(attacker, "steal", "shared", target={"rolloutRestart": restart})
    env.larkapp(attacker, "probe", "no-such-app")
    env.larkapp(allowed, "app", "shared")
    eventually(lambda: env.ready(allowed, "app"), 30, what="the allowed one Ready")
    steal = eventually(lambda: _cred(env, attacker, "steal"), 15, what="steal refused")
    assert steal[:2] == ("False", "NotAllowed")
    probe = eventually(lambda: _cred(env, attacker, "probe"), 15, what="probe refused")
    # An app that exists and one that does not read alike: nothing to learn from the answer.
    assert probe[2].replace("no-such-app", "X") == steal[2].replace("shared", "X")
    assert env.condition(attacker, "steal", "Stalled")["status"] == "True"  # type: ignore[index]
    assert env.kube.secret(attacker, "steal-lark-token") is None
    held = env.secret_values_outside(env.crns)
    assert not [ns for ns, values in held.items() if SECRET in values]
    assert not any(env.token(allowed, "app") in v for v in held.get(attacker, set()))

    # Allowed to use an app, it still rolls only workloads in its own namespace.
    env.kube.patch_cluster_larkapp(
        "shared", {"spec": {"allowedNamespaces": {"names": [allowed, attacker]}}}
    )
    eventually(lambda: env.ready(attacker, "steal") or _rollout(env, attacker), 40)
    cond = eventually(lambda: _rollout(env, attacker), 40, what="RolloutRestart said")
    assert cond["reason"] == "WorkloadNotFound" and attacker in cond["message"]
    victim = env.kube.deployment(allowed, "victim")
    assert victim.metadata.generation == 1
    assert not (victim.spec.template.metadata.annotations or {})

    # The schema: no namespace on a rollout target (strict apply names the field), no other
    # kinds, and appRef never together with the app's own fields.
    manifest = {
        "apiVersion": "larkservice.io/v1alpha1",
        "kind": "LarkApp",
        "metadata": {"name": "sneaky", "namespace": attacker},
        "spec": {
            "appRef": {"name": "shared"},
            "target": {
                "rolloutRestart": [{"kind": "Deployment", "name": "victim", "namespace": allowed}]
            },
        },
    }
    out = env.kube.apply(manifest, check=False)
    assert out.returncode != 0 and "namespace" in out.stderr, out.stderr
    manifest["spec"]["target"]["rolloutRestart"] = [{"kind": "Secret", "name": "lark-app"}]
    out = env.kube.apply(manifest, check=False)
    assert out.returncode != 0 and "rolloutRestart" in out.stderr, out.stderr
    both = {"appRef": {"name": "shared"}, "appId": APP, "appSecretRef": {"name": "lark-app"}}
    manifest["spec"] = both
    out = env.kube.apply(yaml.safe_dump(manifest), check=False)
    assert out.returncode != 0 and "spec.appRef" in out.stderr, out.stderr
    manifest["spec"] = {"appRef": {"name": "shared"}, "domain": "lark"}
    out = env.kube.apply(manifest, check=False)
    assert out.returncode != 0 and "appRef" in out.stderr, out.stderr
    manifest["spec"] = {
        "appRef": {"name": "shared"},
        "target": {
            "template": {"type": "kubernetes.io/service-account-token", "data": {"token": "x"}}
        },
    }
    out = env.kube.apply(manifest, check=False)
    assert out.returncode != 0 and "service-account-token" in out.stderr, out.stderr


def _rollout(env: ClusterEnv, ns: str) -> dict[str, Any] | None:
    c = env.condition(ns, "steal", "RolloutRestart")
    return c if c and c["status"] == "False" else None
