"""`lark-operator validate|token-info|refresh-token|health-check --larkapp NS/NAME`: the
app, its secret, its token Secret and its dependency URLs read through the cluster, and a
refresh asked of the operator as `kubectl lark refresh --wait` asks it."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from lark_operator.vocabulary.hints import hint_for
from tests.helpers.env import Env
from tests.helpers.kube import Kube
from tests.helpers.wait import eventually
from tests.integration.cli.conftest import VENV_BIN, Cli, assert_nothing_leaked, stdout

pytestmark = pytest.mark.integration


def fp(token: str | None) -> str:
    return "sha256:" + hashlib.sha256((token or "").encode()).hexdigest()[:12]


def test_token_commands_through_the_cluster(cli: Cli, apps: Env) -> None:
    ref = f"{apps.ns}/good"
    ok = cli.lark_operator("validate", "--larkapp", ref)
    assert ok.returncode == 0, stdout(ok)
    assert f"OK: credentials of cli_cligood1 are valid at {apps.emu.url}" in ok.stdout

    # token-info reads the token Secret workloads mount: the platform is not asked.
    calls = apps.emu.token_calls("cli_cligood1")
    info = cli.lark_operator("token-info", "--larkapp", ref, "-o", "json")
    assert info.returncode == 0, stdout(info)
    doc = json.loads(info.stdout)
    held = apps.token("good")
    assert doc["fingerprint"] == fp(held)
    # ... the fingerprint `kubectl lark status/describe` show for the same token.
    assert (
        doc["fingerprint"] == apps.kube.larkapp(apps.ns, "good")["status"]["token"]["fingerprint"]
    )
    assert doc["secret"] == "good-lark-token" and doc["app_id"] == "cli_cligood1"
    assert doc["base_url"] == apps.emu.url and 7000 < doc["expires_in_seconds"] <= 7200
    assert apps.emu.token_calls("cli_cligood1") == calls

    # refresh-token asks the operator (one upstream call, by the operator), as `kubectl
    # lark refresh --wait` does; the platform re-issues the same token with > 30m left.
    fresh = cli.lark_operator("refresh-token", "--larkapp", ref)
    assert fresh.returncode == 0, stdout(fresh)
    assert f"tenant token {fp(held)} in Secret good-lark-token expires at" in fresh.stdout
    assert "re-issues a token only when less than 30m remain" in fresh.stdout
    assert apps.emu.token_calls("cli_cligood1") == calls + 1
    annotations = apps.kube.larkapp(apps.ns, "good")["metadata"]["annotations"]
    assert (
        annotations["larkservice.io/refresh-handled-at"]
        == (annotations["larkservice.io/refresh-requested-at"])
    )

    # A refresh the operator reports as failed: its reason, code and hint; exit 1.
    failed = cli.lark_operator("refresh-token", "--larkapp", f"{apps.ns}/bad")
    assert failed.returncode == 1, stdout(failed)
    assert "error: InvalidCredentials (code 10014)" in failed.stderr
    assert f"hint: {hint_for('InvalidCredentials')}" in failed.stderr
    # ... and the LarkApp that never got a token has none to show.
    none = cli.lark_operator("token-info", "--larkapp", f"{apps.ns}/bad")
    assert none.returncode == 1, stdout(none)
    assert "has no token yet: Secret bad-lark-token does not exist" in none.stderr
    assert "InvalidCredentials" in none.stderr

    bad = cli.lark_operator("validate", "--larkapp", f"{apps.ns}/bad")
    assert bad.returncode == 1
    assert "InvalidCredentials (code 10014)" in bad.stderr

    missing = cli.lark_operator("token-info", "--larkapp", f"{apps.ns}/nope")
    assert missing.returncode == 2
    assert 'LarkApp "nope" not found' in missing.stderr


def test_refresh_token_larkapp_refreshes_the_secret(env_factory: Any, cli: Cli) -> None:
    """A platform that re-issues on every call: the operator writes a new token into the
    Secret, and refresh-token --larkapp shows that one."""
    env: Env = env_factory({"cli_renewed1": "renewed-secret"}, reissue_window=7200)
    env.app_secret("app", "renewed-secret")
    env.larkapp("renewed", "cli_renewed1", secret_name="app")
    eventually(lambda: env.ready("renewed"), 30, what="renewed Ready")
    before = env.token("renewed")
    calls = env.emu.token_calls("cli_renewed1")

    proc = cli.lark_operator(
        "refresh-token", "--larkapp", f"{env.ns}/renewed", "-o", "json", "--show-token"
    )
    assert proc.returncode == 0, stdout(proc)
    doc = json.loads(proc.stdout)
    after = env.token("renewed")
    assert after and after != before, "the token Secret was not refreshed"
    assert doc["refreshed"] is True
    assert doc["fingerprint"] == fp(after) and doc["token"] == after  # --show-token
    assert env.emu.token_calls("cli_renewed1") == calls + 1
    status = env.kube.larkapp(env.ns, "renewed")["status"]["token"]
    assert status["fingerprint"] == fp(after)


def test_a_suspended_larkapp_is_never_waited_for(cli: Cli, apps: Env) -> None:
    apps.kube.patch_larkapp(apps.ns, "good", {"spec": {"suspend": True}})
    eventually(
        lambda: (
            (apps.kube.larkapp(apps.ns, "good").get("status") or {}).get("phase") == "Suspended"
        ),
        30,
        what="good Suspended",
    )
    before = apps.kube.larkapp(apps.ns, "good")["metadata"].get("annotations") or {}
    for argv in (
        ["kubectl", "lark", "refresh", "good", "-n", apps.ns, "--wait"],
        ["kubectl", "lark", "refresh", "good", "-n", apps.ns],
        ["lark-operator", "refresh-token", "--larkapp", f"{apps.ns}/good"],
    ):
        started = time.monotonic()
        proc = cli.run([str(VENV_BIN / argv[0]), *argv[1:]])
        assert proc.returncode == 1, (argv, stdout(proc))
        assert time.monotonic() - started < 20, "waited for a LarkApp that is suspended"
        assert f"LarkApp {apps.ns}/good is suspended (spec.suspend: true)" in proc.stderr
        assert "kubectl patch larkapp good" in proc.stderr
        assert "did not handle" not in proc.stderr
    after = apps.kube.larkapp(apps.ns, "good")["metadata"].get("annotations") or {}
    assert after.get("larkservice.io/refresh-requested-at") == before.get(
        "larkservice.io/refresh-requested-at"
    ), "a refresh was requested for a suspended LarkApp"


def test_health_check_through_the_cluster(
    cli: Cli,
    kube: Kube,
    namespace: str,
    redis_server: Any,
    postgres_server: Any,
    server_passwords: dict[str, str],
) -> None:
    """No operator needed: the command reads the LarkApp and its Secrets itself."""
    kube.put_secret(namespace, "app", {"appSecret": "unused-secret"})
    kube.put_secret(
        namespace,
        "deps",
        # A trailing newline (echo into --from-file) is stripped, as the operator strips it.
        {
            "dsn": postgres_server.dsn + "\n",
            "url": redis_server.url,
            "mq": "amqp://u:mq-pw@127.0.0.1:1/",
        },
    )
    spec = {
        "appId": "cli_health1",
        "appSecretRef": {"name": "app"},
        "probes": {
            "postgres": {"dsnSecretRef": {"name": "deps"}},
            "redis": {"urlSecretRef": {"name": "deps"}},
            "rabbitmq": {"urlSecretRef": {"name": "deps", "key": "mq"}},
        },
    }
    kube.create_larkapp(namespace, "deps", spec)
    ref = f"{namespace}/deps"

    healthy = cli.lark_operator("health-check", "--larkapp", ref, "--database", "--redis")
    assert healthy.returncode == 0, stdout(healthy)
    assert "postgres" in healthy.stdout and "redis" in healthy.stdout

    every = cli.lark_operator("health-check", "--larkapp", ref, "-o", "json")
    assert every.returncode == 1, stdout(every)
    results = {r["dependency"]: r for r in json.loads(every.stdout)["results"]}
    assert results["postgres"]["healthy"] and results["redis"]["healthy"]
    assert results["rabbitmq"]["reason"] == "Unreachable"

    kube.delete_secret(namespace, "deps")
    gone = cli.lark_operator("health-check", "--larkapp", ref)
    assert gone.returncode == 2
    assert (
        "SecretNotFound: Secret deps (spec.probes.postgres.dsnSecretRef) "
        f"not found in namespace {namespace}." in gone.stderr
    )

    passwords = {*server_passwords.values(), "mq-pw", "unused-secret"}
    assert_nothing_leaked(cli, passwords)
