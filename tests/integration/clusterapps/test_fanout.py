"""One ClusterLarkApp serving LarkApps in many namespaces: one upstream call per refresh
cycle however many namespaces, the same token in every token Secret, the App Secret in the
cluster resource namespace only, and only the namespaces it allows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.helpers.wait import eventually
from tests.integration.clusterapps.conftest import ClusterEnv, cluster_events

pytestmark = pytest.mark.integration

APP, SECRET = "cli_fanout01", "s3cret-fanout-value"
N = 50


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _tokens(env: ClusterEnv, where: list[str]) -> dict[str, str | None]:
    return {ns: env.token(ns, "app") for ns in where}


def test_one_app_in_fifty_namespaces_one_call_per_cycle(cluster_env: Any) -> None:
    # ttl 100 s, re-issue in the last 95 s, renewBefore 1m: a new token every ~40 s.
    env: ClusterEnv = cluster_env({APP: SECRET}, token_ttl=100, reissue_window=95)
    env.app_secret(SECRET)
    users = [env.namespace() for _ in range(N)]
    outsider = env.namespace()
    env.cluster_app("shared", APP, {"names": users})
    for ns in [*users, outsider]:
        env.larkapp(ns, "app", "shared")

    eventually(lambda: all(env.ready(ns, "app") for ns in users), 90, what="all Ready")
    first = _tokens(env, users)
    assert len(set(first.values())) == 1 and None not in first.values()
    assert env.emu.token_calls(APP) == 1  # one upstream call for fifty namespaces

    status = env.kube.cluster_larkapp("shared")["status"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["CredentialsValid"]["reason"] == "Valid"
    assert conds["Stalled"]["status"] == "False"
    issued = env.emu.tokens(APP)["tokens"][0]
    assert abs(_ts(status["token"]["expiresAt"]) - issued["expires_at"]) <= 1
    # Both counts follow the LarkApps' own reconciles (the outsider's refusal may land
    # after the fifty are Ready): waited for together, then asserted exactly.
    eventually(
        lambda: (lambda st: (st.get("larkApps"), st.get("refusedLarkApps")) == (N, 1))(
            env.kube.cluster_larkapp("shared")["status"]
        ),
        10,
        what=f"counts {env.kube.cluster_larkapp('shared')['status']}",
    )
    # Each LarkApp's status describes its own Secret, with the app's id and expiry.
    one = env.kube.larkapp(users[0], "app")["status"]
    assert one["token"]["fingerprint"] == status["token"]["fingerprint"]
    assert env.kube.secret(users[0], "app-lark-token")["app_id"] == APP  # type: ignore[index]

    # The namespace not allowed: refused, Stalled, nothing written.
    cred = env.condition(outsider, "app", "CredentialsValid")
    assert cred is not None and (cred["status"], cred["reason"]) == ("False", "NotAllowed")
    assert env.condition(outsider, "app", "Stalled")["status"] == "True"  # type: ignore[index]
    assert env.kube.secret(outsider, "app-lark-token") is None
    # The App Secret is in the cluster resource namespace and nowhere else.
    held = env.secret_values_outside(env.crns)
    assert not [ns for ns, values in held.items() if SECRET in values]
    assert SECRET in {v for v in (env.kube.secret(env.crns, "lark-app") or {}).values()}

    # The next cycles: one call each, the new token in all fifty Secrets.
    for cycle in (2, 3):
        eventually(lambda c=cycle: env.emu.token_calls(APP) >= c, 90, what=f"cycle {cycle}")
        old = set(first.values())
        eventually(
            lambda old=old: len(now := set(_tokens(env, users).values())) == 1 and now != old,
            30,
            what="new token everywhere",
        )
        first = _tokens(env, users)
        assert env.emu.token_calls(APP) == cycle
    assert env.kube.secret(outsider, "app-lark-token") is None
    assert cluster_events(env.kube, "shared"), "no Event on the ClusterLarkApp"


def test_namespace_removed_from_allowed_keeps_its_token_until_expiry(cluster_env: Any) -> None:
    env: ClusterEnv = cluster_env({APP: SECRET}, token_ttl=100, reissue_window=95)
    env.app_secret(SECRET)
    team = {"lark.example.com/team": "payments"}
    by_label, by_name = env.namespace(team), env.namespace()
    env.cluster_app("shared", APP, {"names": [by_name], "selector": {"matchLabels": team}})
    env.larkapp(by_label, "app", "shared")
    env.larkapp(by_name, "app", "shared")
    eventually(lambda: env.ready(by_label, "app") and env.ready(by_name, "app"), 60, what="Ready")
    kept = env.token(by_label, "app")
    calls = env.emu.token_calls(APP)

    env.kube.label_namespace(by_label, {"lark.example.com/team": None})  # label removed
    eventually(
        lambda: (
            (env.condition(by_label, "app", "CredentialsValid") or {}).get("reason") == "NotAllowed"
        ),
        15,
        what="NotAllowed after the label went",
    )
    # Its token stays (it is valid until it expires); refreshes go on for the others only.
    eventually(lambda: env.emu.token_calls(APP) > calls, 90, what="next cycle")
    eventually(lambda: env.token(by_name, "app") != kept, 30, what="the allowed one renewed")
    assert env.token(by_label, "app") == kept
    tok = env.condition(by_label, "app", "TokenReady")
    assert tok is not None and tok["status"] == "True", tok
    eventually(lambda: env.kube.cluster_larkapp("shared")["status"].get("refusedLarkApps") == 1, 10)

    # Allowed again by name: it gets the current token at once.
    env.kube.patch_cluster_larkapp(
        "shared", {"spec": {"allowedNamespaces": {"names": [by_name, by_label]}}}
    )
    eventually(
        lambda: (
            env.token(by_label, "app") == env.token(by_name, "app") and env.ready(by_label, "app")
        ),
        15,
        what="re-admitted",
    )
