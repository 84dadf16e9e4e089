"""SecretKeyMissing lists the keys present wherever it is said: the operator's conditions
(app Secret and a probe's DSN/URL Secret), `kubectl lark describe|validate`, and the
`--larkapp` paths of `lark-operator`. Never a value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.env import Env
from tests.helpers.wait import eventually
from tests.integration.cli.conftest import Cli, assert_nothing_leaked, stdout

pytestmark = pytest.mark.integration

APP, SECRET = "cli_keysmissing1", "keys-missing-secret"


def condition(env: Env, name: str, ctype: str) -> dict[str, Any]:
    return env.kube.condition(env.ns, name, ctype) or {}


def test_secret_key_missing_lists_the_keys_present_everywhere(env_factory: Any, cli: Cli) -> None:
    env: Env = env_factory({APP: SECRET})
    cli.allow(env.emu.url)
    env.kube.put_secret(env.ns, "app", {"appsecret": SECRET, "note": "x"})  # wrong case
    env.larkapp("wrong-key", APP, secret_name="app")
    env.app_secret("good-app", SECRET)
    env.kube.put_secret(env.ns, "deps", {"url": "redis://127.0.0.1:1/0", "note": "db-pw-here"})
    env.larkapp(
        "probe-key",
        APP,
        secret_name="good-app",
        probes={
            "interval": "5s",
            "timeout": "2s",
            "postgres": {"dsnSecretRef": {"name": "deps", "key": "dsn"}},
        },
    )
    app_msg = (
        "Secret app (spec.appSecretRef) has no non-empty key 'appSecret' "
        "(keys present: appsecret, note)"
    )
    eventually(
        lambda: app_msg in condition(env, "wrong-key", "CredentialsValid").get("message", ""),
        30,
        what="CredentialsValid names the keys present",
    )
    eventually(
        lambda: condition(env, "probe-key", "PostgresHealthy").get("reason") == "SecretKeyMissing",
        40,
        what="PostgresHealthy=False/SecretKeyMissing",
    )
    probe_msg = condition(env, "probe-key", "PostgresHealthy")["message"]
    assert "has no non-empty key 'dsn' (keys present: note, url)" in probe_msg, probe_msg

    said = {
        "kubectl lark validate": cli.kubectl("lark", "validate", "wrong-key", "-n", env.ns),
        "validate --larkapp": cli.lark_operator("validate", "--larkapp", f"{env.ns}/wrong-key"),
        "kubectl lark describe": cli.kubectl("lark", "describe", "wrong-key", "-n", env.ns),
    }
    for what, proc in said.items():
        assert "(keys present: appsecret, note)" in stdout(proc), (what, stdout(proc))
    health = cli.lark_operator("health-check", "--larkapp", f"{env.ns}/probe-key")
    assert health.returncode == 2, stdout(health)
    assert (
        "SecretKeyMissing: Secret deps (spec.probes.postgres.dsnSecretRef) has no non-empty "
        "key 'dsn' (keys present: note, url)" in health.stderr
    )
    described = cli.kubectl("lark", "describe", "probe-key", "-n", env.ns)
    assert "(keys present: note, url)" in described.stdout, described.stdout
    assert_nothing_leaked(cli, {SECRET, "db-pw-here"})
