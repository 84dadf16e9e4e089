"""Several LarkApps naming one token Secret (spec.target.secretName).

Decision: the first LarkApp to write the Secret holds it. Every other one is refused
before it writes anything: its token never overwrites the holder's, its status says
`SecretNotOwned` (TokenReady and lastError) naming the holder and what to do, and deleting it
leaves the holder's Secret alone. When the holder goes (deleted, or retargeted), one of
the others takes the Secret over. Before, an Owner-policy second LarkApp hit the API
server's "only one controller reference" error and an Orphan-policy one silently
overwrote the first one's token on every refresh.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.env import Env
from tests.helpers.wait import always, eventually
from tests.integration.hostile.conftest import last_error, reason

pytestmark = pytest.mark.integration

APPS = {f"cli_share{i}": f"share-secret-value-{i}" for i in range(4)}


def _holder(env: Env, secret_name: str) -> tuple[str | None, str | None]:
    """(LarkApp named by the Secret, tenant token in it)."""
    obj = env.kube.secret_obj(env.ns, secret_name)
    if obj is None:
        return None, None
    data = env.kube.secret(env.ns, secret_name) or {}
    token = data.get("tenant_access_token")
    if token:
        env.secrets.add(token)
    return (obj.metadata.annotations or {}).get("larkservice.io/larkapp-name"), token


def _issued(env: Env, app_id: str) -> set[str]:
    return {t["token"] for t in env.emu.tokens(app_id)["tokens"] if t["type"] == "tenant"}


def _refused_for(env: Env, name: str, holder: str) -> bool:
    err = last_error(env, name)
    return err.get("reason") == "SecretNotOwned" and f"LarkApp '{holder}'" in err.get("message", "")


@pytest.mark.parametrize("policy", ["Owner", "Orphan"])
def test_the_first_larkapp_keeps_the_secret_the_others_are_told_why(
    env_factory: Any, policy: str
) -> None:
    env = env_factory(APPS)
    for i, secret in enumerate(APPS.values()):
        env.app_secret(f"s{i}", secret)
    target = {"secretName": "shared-token", "creationPolicy": policy}
    names = [f"claimant-{i}" for i in range(4)]
    env.larkapp(names[0], "cli_share0", secret_name="s0", target=target)
    eventually(lambda: env.ready(names[0]), 30, what="the first LarkApp Ready")
    for i in (1, 2, 3):
        env.larkapp(names[i], f"cli_share{i}", secret_name=f"s{i}", target=target)
    for i in (1, 2, 3):
        eventually(
            lambda i=i: _refused_for(env, names[i], names[0]), 30, what=f"{names[i]} refused"
        )

    # The Secret holds the first one's token, and stays put: no flapping between claimants.
    holder, token = _holder(env, "shared-token")
    assert holder == names[0] and token in _issued(env, "cli_share0")
    rv = env.kube.secret_obj(env.ns, "shared-token").metadata.resource_version
    always(
        lambda: env.kube.secret_obj(env.ns, "shared-token").metadata.resource_version == rv,
        4,
        what="the shared Secret left alone",
    )
    assert env.ready(names[0])
    for i in (1, 2, 3):
        st = env.kube.larkapp(env.ns, names[i])["status"]
        assert st["phase"] == "Failed"
        assert reason(env, names[i], "TokenReady") == "SecretNotOwned"
        assert reason(env, names[i], "CredentialsValid") == "Valid"  # its credentials are fine
        assert "spec.target.secretName" in st["lastError"]["message"]
        assert "secretName" in st["lastError"]["hint"]
        assert "token" not in st  # it holds nothing it could describe
        assert env.emu.token_calls(f"cli_share{i}") <= 1, "refused apps must not hammer upstream"
    owners = env.kube.secret_obj(env.ns, "shared-token").metadata.owner_references or []
    assert [o.name for o in owners] == ([names[0]] if policy == "Owner" else [])

    # Deleting a refused LarkApp (deletionPolicy Delete) leaves the holder's Secret alone.
    env.kube.delete_larkapp(env.ns, names[3])
    eventually(lambda: env.kube.larkapp_gone(env.ns, names[3]), 20, what="claimant-3 gone")
    assert _holder(env, "shared-token")[0] == names[0]
    assert env.ready(names[0])

    # The holder goes: one of the others takes the Secret over, the last one is refused
    # naming the new holder.
    env.kube.delete_larkapp(env.ns, names[0])

    def taken_over() -> str | None:
        holder, token = _holder(env, "shared-token")
        if holder in (names[1], names[2]) and env.ready(holder):
            app_id = f"cli_share{names.index(holder)}"
            return holder if token in _issued(env, app_id) else None
        return None

    new_holder = eventually(taken_over, 30, what="a refused LarkApp takes over")
    other = names[2] if new_holder == names[1] else names[1]
    eventually(lambda: _refused_for(env, other, new_holder), 30, what="the last one refused")
    if policy == "Owner":
        owners = env.kube.secret_obj(env.ns, "shared-token").metadata.owner_references or []
        assert [o.name for o in owners] == [new_holder]


def test_a_secret_controlled_by_something_else_is_not_taken(env_factory: Any) -> None:
    from kubernetes import client

    env = env_factory({"cli_share0": APPS["cli_share0"]})
    env.app_secret("s0", APPS["cli_share0"])
    # A Secret another controller owns (here: a ConfigMap stands in for an ExternalSecret).
    cm = env.kube.core.create_namespaced_config_map(
        env.ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="someone"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="someone", uid=cm.metadata.uid, controller=True
    )
    env.kube.core.create_namespaced_secret(
        env.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="taken", owner_references=[ref]),
            string_data={"theirs": "their-data"},
        ),
    )
    env.larkapp("late", "cli_share0", secret_name="s0", target={"secretName": "taken"})
    eventually(
        lambda: "ConfigMap 'someone'" in last_error(env, "late").get("message", ""),
        30,
        what="refused: controlled by the ConfigMap",
    )
    assert env.kube.secret(env.ns, "taken") == {"theirs": "their-data"}
