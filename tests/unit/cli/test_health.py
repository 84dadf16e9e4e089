"""cli/health.py: `health-check` and `validate-env` — exit codes, output, and no secret in
any of it. Against real servers: tests/integration/cli/test_health_check.py."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from lark_operator.probes.target import ProbeTarget
from tests.helpers.health_cli import clear_env, run

SECRET = "S3cret-app-secret-value"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(monkeypatch)


# --- validate-env -------------------------------------------------------------------------
def test_validate_env_ok(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("LARK_APP_ID", "cli_a1b2c3")
    monkeypatch.setenv("LARK_APP_SECRET", SECRET)
    monkeypatch.setenv("LARK_DOMAIN", "lark")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:db-Pa55@db:5432/app")
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 0, out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert lines["LARK_APP_ID"] == lines["LARK_APP_SECRET"] == lines["LARK_DOMAIN"] == "OK"
    assert lines["DATABASE_URL"] == "OK" and lines["REDIS_URL"] == "UNSET"
    assert "postgresql://app:***@db:5432/app" in out
    assert SECRET not in out and "db-Pa55" not in out


def test_validate_env_names_what_is_missing(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, ["validate-env", "-o", "json"])
    assert code == 1
    doc = json.loads(out)
    status = {v["variable"]: v["status"] for v in doc["variables"]}
    assert doc["ok"] is False
    assert status["LARK_APP_ID"] == status["LARK_APP_SECRET"] == "MISSING"
    assert status["LARK_DOMAIN"] == "UNSET"


@pytest.mark.parametrize(
    ("var", "value", "why"),
    [
        ("LARK_APP_ID", "app_123", "not 'cli_'"),
        ("LARK_APP_ID", "cli_" + "a" * 61, "not 'cli_'"),
        ("LARK_APP_ID", "cli_abc ", "whitespace"),
        ("LARK_APP_SECRET", f" {SECRET}\n", "whitespace"),
        ("LARK_DOMAIN", "ftp://open.example", "not feishu, lark"),
        ("LARK_DOMAIN", "open.feishu.cn", "not feishu, lark"),
        ("DATABASE_URL", "mysql://u:url-Pa55@db/app", "scheme 'mysql'"),
        ("REDIS_URL", "redis://:url-Pa55@cache:port/0", "port"),
        ("RABBITMQ_URL", "host=mq password=url-Pa55", "not a URL"),
        ("RABBITMQ_MANAGEMENT_URL", "amqp://u:url-Pa55@mq/", "scheme 'amqp'"),
    ],
)
def test_validate_env_malformed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, var: str, value: str, why: str
) -> None:
    monkeypatch.setenv("LARK_APP_ID", "cli_a1b2c3")
    monkeypatch.setenv("LARK_APP_SECRET", SECRET)
    monkeypatch.setenv(var, value)
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith(var + " ")]
    assert "MALFORMED" in line and why in line
    assert SECRET not in out and "url-Pa55" not in out


def test_validate_env_reports_which_alias_wins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LARK_APP_ID", "cli_a1b2c3")
    monkeypatch.setenv("LARK_APP_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@db/app")
    monkeypatch.setenv("POSTGRES_DSN", "postgresql://b@db/app")
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 0
    assert "ignored: DATABASE_URL wins" in out


# --- health-check without servers ----------------------------------------------------------
def test_nothing_configured_is_exit_2(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, ["health-check"])
    assert code == 2 and "DATABASE_URL" in err


@pytest.mark.parametrize(
    ("flag", "variable"),
    [("--database", "DATABASE_URL"), ("--redis", "REDIS_URL"), ("--rabbitmq", "RABBITMQ_URL")],
)
def test_selected_dependency_without_url_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, flag: str, variable: str
) -> None:
    monkeypatch.setenv("REDIS_URL" if flag != "--redis" else "DATABASE_URL", "redis://x:1")
    code, _, err = run(capsys, ["health-check", flag])
    assert code == 2 and variable in err


def test_all_requires_every_dependency(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    code, _, err = run(capsys, ["health-check", "--all"])
    assert code == 2 and "DATABASE_URL" in err and "RABBITMQ_URL" in err


def test_invalid_url_is_unhealthy_json_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LARK_DATABASE_URL", "mysql://app:url-Pa55@db/app")
    code, out, _ = run(capsys, ["health-check", "--database", "-o", "json"])
    assert code == 1
    doc = json.loads(out)
    assert doc["healthy"] is False
    (res,) = doc["results"]
    assert res["reason"] == "InvalidURL" and res["hint"]
    assert "url-Pa55" not in out


def test_larkapp_without_the_cluster_module_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", None)  # import fails
    code, _, err = run(capsys, ["health-check", "--larkapp", "ns/app"])
    assert code == 2 and "not available" in err


@pytest.mark.parametrize("ref", ["app", "ns/", "/app", "a/b/c"])
def test_larkapp_reference_format(capsys: pytest.CaptureFixture, ref: str) -> None:
    code, _, err = run(capsys, ["health-check", "--larkapp", ref])
    assert code == 2 and "NAMESPACE/NAME" in err


@pytest.mark.parametrize("is_async", [False, True])
def test_larkapp_targets_come_from_the_resolver(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, is_async: bool
) -> None:
    seen: list[tuple[str, str]] = []

    def targets(namespace: str, name: str, dependencies: Any = None) -> list:
        seen.append((namespace, name))
        assert dependencies == ["redis"]  # the selection is passed on
        return [
            ProbeTarget("redis", "redis://:url-Pa55@127.0.0.1:1/0", timeout=1),
            {"dependency": "postgres", "url": "postgresql://u:url-Pa55@127.0.0.1:1/x"},
        ]

    async def async_targets(namespace: str, name: str, dependencies: Any = None) -> list:
        return targets(namespace, name, dependencies)

    module = types.ModuleType("lark_operator.cli.cluster")
    module.resolve_probe_targets = async_targets if is_async else targets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", module)
    code, out, _ = run(capsys, ["health-check", "--larkapp", "team-a/orders", "--redis"])
    assert seen == [("team-a", "orders")]
    assert code == 1
    assert "Unreachable" in out and "postgres" not in out.split("\n", 1)[1]
    assert "url-Pa55" not in out
