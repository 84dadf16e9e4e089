"""The trust boundary: a LarkApp cannot make the operator write, take over or delete a
Secret the operator did not create for it (docs/security.md).

An attacker who may create LarkApps in a namespace points spec.target.secretName at
something valuable: a database password, the app Secret itself. Before, the operator merged
its token keys into the Secret, took it over with an owner reference, and deleted it with
the LarkApp. Now: reason SecretNotOwned, the Secret byte-for-byte unchanged (its
resourceVersion too), and left alone when the LarkApp goes, whatever its policies. The only
way in is consent from someone who may write the Secret: larkservice.io/adopt: "true".
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.helpers.env import Env
from tests.helpers.wait import always, eventually
from tests.integration.hostile.conftest import reason

pytestmark = pytest.mark.integration

APP, SECRET = "cli_owner01", "owner-secret-value-0001"


def _snapshot(env: Env, name: str) -> tuple[Any, ...] | None:
    """Everything of a Secret a change would touch, resourceVersion included."""
    s = env.kube.secret_obj(env.ns, name)
    if s is None:
        return None
    m = s.metadata
    owners = [(o.kind, o.name, o.uid) for o in m.owner_references or []]
    return (m.uid, m.resource_version, s.data, m.labels, m.annotations, owners, s.type)


def _put_foreign(env: Env, name: str, **meta: Any) -> None:
    env.kube.core.create_namespaced_secret(
        env.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"app": "db"}, **meta),
            string_data={"password": "db-password-not-for-larkapps"},
        ),
    )
    env.secrets.add("db-password-not-for-larkapps")


def _stays(env: Env, name: str, snapshot: Any, seconds: float) -> None:
    """The Secret is exactly as it was throughout a window."""
    always(
        lambda: _snapshot(env, name) == snapshot,
        seconds,
        interval=0.5,
        what=f"Secret {name} neither changed nor deleted",
    )


@pytest.mark.parametrize(
    "target", [{}, {"deletionPolicy": "Retain"}, {"creationPolicy": "Orphan"}], ids=str
)
def test_an_unrelated_secret_is_never_written_taken_over_or_deleted(
    env_factory: Any, target: dict[str, str]
) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    _put_foreign(env, "db-password")
    before = _snapshot(env, "db-password")
    env.larkapp("attacker", APP, target={"secretName": "db-password", **target})

    eventually(
        lambda: reason(env, "attacker", "TokenReady") == "SecretNotOwned", 30, what="refused"
    )
    st = env.kube.larkapp(env.ns, "attacker")["status"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "SecretNotOwned"
    message = next(c for c in st["conditions"] if c["type"] == "TokenReady")["message"]
    assert "db-password" in message and "larkservice.io/adopt=true" in message
    assert "token" not in st, "no token is described: the target holds none"
    eventually(  # posted right after the status write read above
        lambda: "SecretNotOwned" in env.kube.event_reasons(env.ns, "attacker"), 10, what="Event"
    )
    _stays(env, "db-password", before, 4)

    env.kube.delete_larkapp(env.ns, "attacker")
    eventually(lambda: env.kube.larkapp_gone(env.ns, "attacker"), 20, what="LarkApp gone")
    _stays(env, "db-password", before, 4)
    assert "left alone" in env.op.logs()


def test_a_target_equal_to_a_secret_the_larkapp_reads_is_rejected_at_apply_time(
    env_factory: Any,
) -> None:
    env = env_factory({APP: SECRET}, start=False)
    for spec in (
        {"target": {"secretName": "lark-secret"}},  # its own app Secret
        {
            "target": {"secretName": "db"},
            "probes": {"postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}}},
        },
    ):
        body = {
            "apiVersion": "larkservice.io/v1alpha1",
            "kind": "LarkApp",
            "metadata": {"name": "selfish"},
            "spec": {"appId": APP, "appSecretRef": {"name": "lark-secret"}, **spec},
        }
        out = env.kube.apply(body, check=False)
        assert out.returncode != 0
        assert "spec.target.secretName" in out.stderr and "reads" in out.stderr, out.stderr
    # The default name counts too: a LarkApp "x" reading a Secret named "x-lark-token".
    body["metadata"]["name"] = "x"
    body["spec"] = {"appId": APP, "appSecretRef": {"name": "x-lark-token"}}
    out = env.kube.apply(body, check=False)
    assert out.returncode != 0 and "spec.target.secretName" in out.stderr


def test_consent_by_annotation_lets_the_operator_adopt_the_secret(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    _put_foreign(env, "shared-config")
    env.larkapp("adopter", APP, target={"secretName": "shared-config"})
    eventually(lambda: reason(env, "adopter", "TokenReady") == "SecretNotOwned", 30, what="refused")
    calls = env.emu.token_calls(APP)
    # The Secret's owner consents: within seconds (the Secret watch), not after a backoff.
    env.kube.kubectl(
        "annotate", "secret", "shared-config", "larkservice.io/adopt=true", "-n", env.ns
    )
    eventually(lambda: env.ready("adopter"), 15, what="adopted and Ready")
    data = env.kube.secret(env.ns, "shared-config") or {}
    env.secrets.add(data["tenant_access_token"])
    assert data["password"] == "db-password-not-for-larkapps", "their keys stay"
    assert data["app_id"] == APP
    obj = env.kube.secret_obj(env.ns, "shared-config")
    assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "lark-operator"
    assert obj.metadata.labels["app"] == "db"
    assert [o.name for o in obj.metadata.owner_references or []] == ["adopter"]
    assert env.emu.token_calls(APP) <= calls + 1


def test_a_changed_target_lets_go_of_the_old_secret_only_if_it_is_ours(
    env_factory: Any,
) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    _put_foreign(env, "db-password")
    before = _snapshot(env, "db-password")
    env.larkapp("mover", APP, target={"creationPolicy": "Orphan"})  # nothing for the GC
    eventually(lambda: env.ready("mover"), 30, what="Ready")
    token = env.token("mover")

    env.kube.patch_larkapp(env.ns, "mover", {"spec": {"target": {"secretName": "moved"}}})
    eventually(
        lambda: (env.kube.secret(env.ns, "moved") or {}).get("tenant_access_token") == token,
        15,
        what="the token in the new target",
    )
    eventually(lambda: env.kube.secret_obj(env.ns, "mover-lark-token") is None, 15, what="old")

    # Retargeted at a Secret that is not ours: refused, and the Secret it held is kept
    # (workloads still read their token there) — nothing is let go before a write lands.
    moved = _snapshot(env, "moved")
    env.kube.patch_larkapp(env.ns, "mover", {"spec": {"target": {"secretName": "db-password"}}})
    eventually(lambda: reason(env, "mover", "TokenReady") == "SecretNotOwned", 15, what="refused")
    _stays(env, "db-password", before, 3)
    assert _snapshot(env, "moved") == moved
