"""The App Secret of a ClusterLarkApp changed or gone: the ClusterLarkApp and every LarkApp
using it say so within seconds (the Secret watch in the cluster resource namespace), and
the tokens already in their Secrets stay until they expire."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.wait import eventually
from tests.integration.cli.conftest import Cli, row_of
from tests.integration.clusterapps.conftest import ClusterEnv

pytestmark = pytest.mark.integration

APP, SECRET = "cli_rotate01", "s3cret-rotate-value"
WRONG = "not-the-app-secret-0123456789"


def _reasons(env: ClusterEnv, users: list[str]) -> set[tuple[str, str]]:
    out = set()
    for ns in users:
        c = env.condition(ns, "app", "CredentialsValid") or {}
        out.add((c.get("status", "-"), c.get("reason", "-")))
    return out


def _cluster_row(text: str, name: str = "shared") -> list[str]:
    """The row of ClusterLarkApp `name` in `kubectl lark status` (its table's first column)."""
    rows = [line.split() for line in text.splitlines()]
    return next((r for r in rows if r and r[0] == name), [])


def _cluster_reason(env: ClusterEnv) -> tuple[str, str]:
    c = env.kube.cluster_condition("shared", "CredentialsValid") or {}
    return c.get("status", "-"), c.get("reason", "-")


def test_app_secret_rotated_or_deleted_is_said_everywhere_in_seconds(cluster_env: Any) -> None:
    env: ClusterEnv = cluster_env({APP: SECRET})
    env.app_secret(SECRET)
    env.secrets.add(WRONG)
    users = [env.namespace() for _ in range(5)]
    env.cluster_app("shared", APP, {"names": users})
    for i, ns in enumerate(users):
        # one of them wants its token in a shape of its own
        spec = {"target": {"template": {"data": {"auth": "Bearer {{ tenant_access_token }}"}}}}
        env.larkapp(ns, "app", "shared", **(spec if i == 0 else {}))
    eventually(lambda: all(env.ready(ns, "app") for ns in users), 60, what="all Ready")
    held = {ns: env.kube.secret(ns, "app-lark-token") for ns in users}
    assert held[users[0]] == {"auth": f"Bearer {env.token(users[1], 'app')}"}

    # `kubectl lark status` shows the LarkApp and the ClusterLarkApp it uses.
    cli = Cli(env.kube.kubeconfig)
    proc = cli.kubectl("lark", "status", "-n", users[1])
    assert proc.returncode == 0, proc.stderr
    larkapps, shared = proc.stdout.strip().split("\n\n")
    assert row_of(larkapps, "app")[:4] == [users[1], "app", "clusterlarkapp/shared", "True"]
    assert _cluster_row(shared)[:4] == ["shared", APP, "True", "Ready"]
    eventually(
        lambda: _cluster_row(cli.kubectl("lark", "status", "-A").stdout)[-2:] == ["5", "0"], 10
    )

    env.app_secret(WRONG)  # rotated to a value the platform refuses
    eventually(lambda: _cluster_reason(env) == ("False", "InvalidCredentials"), 10, what="cluster")
    eventually(
        lambda: _reasons(env, users) == {("False", "InvalidCredentials")}, 10, what="every user"
    )
    for ns in users:  # the good tokens stay
        assert env.kube.secret(ns, "app-lark-token") == held[ns]
        tok = env.condition(ns, "app", "TokenReady")
        assert tok is not None and (tok["status"], tok["reason"]) == ("True", "RefreshFailed")
        assert env.condition(ns, "app", "Stalled")["status"] == "True"  # type: ignore[index]

    failing = cli.kubectl("lark", "status", "-n", users[1], "--fail-if-not-ready")
    assert failing.returncode == 1
    assert "clusterlarkapp/shared: InvalidCredentials — " in failing.stdout

    env.kube.delete_secret(env.crns, "lark-app")
    eventually(lambda: _cluster_reason(env) == ("False", "SecretNotFound"), 10, what="gone")
    eventually(lambda: _reasons(env, users) == {("False", "SecretNotFound")}, 10, what="users")
    message = (env.condition(users[2], "app", "CredentialsValid") or {}).get("message", "")
    assert env.crns in message and "lark-app" in message  # where the App Secret is missing
    assert all(env.kube.secret(ns, "app-lark-token") == held[ns] for ns in users)

    env.app_secret(SECRET)  # back
    eventually(lambda: _cluster_reason(env) == ("True", "Valid"), 10, what="valid again")
    eventually(lambda: all(env.ready(ns, "app") for ns in users), 15, what="users Ready again")
