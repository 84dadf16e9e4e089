"""`lark-operator validate|token-info|refresh-token|health-check --larkapp NS/NAME`: the
app, its secret and its dependency URLs read through the cluster."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.helpers.env import Env
from tests.helpers.kube import Kube
from tests.integration.cli.conftest import Cli, assert_nothing_leaked, stdout

pytestmark = pytest.mark.integration


def test_token_commands_through_the_cluster(cli: Cli, apps: Env) -> None:
    ref = f"{apps.ns}/good"
    ok = cli.lark_operator("validate", "--larkapp", ref)
    assert ok.returncode == 0, stdout(ok)
    assert f"OK: credentials of cli_cligood1 are valid at {apps.emu.url}" in ok.stdout

    info = json.loads(cli.lark_operator("token-info", "--larkapp", ref, "-o", "json").stdout)
    held = apps.token("good") or ""
    # The same token the operator put into the Secret (the platform re-issues it as is).
    assert info["fingerprint"] == "sha256:" + hashlib.sha256(held.encode()).hexdigest()[:12]

    calls = apps.emu.token_calls("cli_cligood1")
    fresh = cli.lark_operator("refresh-token", "--larkapp", ref)
    assert fresh.returncode == 0, stdout(fresh)
    assert info["fingerprint"] in fresh.stdout
    assert apps.emu.token_calls("cli_cligood1") == calls + 1

    bad = cli.lark_operator("validate", "--larkapp", f"{apps.ns}/bad")
    assert bad.returncode == 1
    assert "InvalidCredentials (code 10014)" in bad.stderr

    missing = cli.lark_operator("token-info", "--larkapp", f"{apps.ns}/nope")
    assert missing.returncode == 2
    assert 'LarkApp "nope" not found' in missing.stderr


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
