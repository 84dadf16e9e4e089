"""cli/health.py: `health-check` and `validate-env` — exit codes, output, and no secret in
any of it. Against real servers: tests/integration/cli/test_health_check.py."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from lark_operator.credentials import ALLOWED_BASE_URLS_ENV
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
        ("LARK_DOMAIN", "ftp://open.example", "not feishu, lark"),
        ("LARK_DOMAIN", "open.feishu.cn", "not feishu, lark"),
        ("DATABASE_URL", "mysql://u:url-Pa55@db/app", "scheme 'mysql'"),
        ("REDIS_URL", "redis://:url-Pa55@cache:port/0", "port"),
        ("RABBITMQ_URL", "host=mq password=url-Pa55", "not a URL"),
        ("RABBITMQ_MANAGEMENT_URL", "amqp://u:url-Pa55@mq/", "scheme 'amqp'"),
        ("POSTGRES_PORT", "5432x", "not a port"),
        ("POSTGRES_PORT", "70000", "not a port"),
        ("REDIS_PORT", "-1", "not a port"),
        ("RABBITMQ_HOST", "amqp://mq", "not a host name"),
        ("POSTGRES_HOST", "db host", "not a host name"),
        (ALLOWED_BASE_URLS_ENV, "http://127.0.0.1:1,open.example", "not an http(s) URL"),
        (ALLOWED_BASE_URLS_ENV, "http://169.254.169.254", "metadata"),
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


@pytest.mark.parametrize("stored", [f" {SECRET}\n", f"{SECRET}\r\n", f"\t{SECRET}  "])
def test_validate_env_accepts_the_app_secret_as_validate_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, stored: str
) -> None:
    """One normalisation (credentials.normalise_text): what `validate` sends, is OK here."""
    monkeypatch.setenv("LARK_APP_ID", "cli_a1b2c3")
    monkeypatch.setenv("LARK_APP_SECRET", stored)
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("LARK_APP_SECRET ")]
    assert " OK " in line and "whitespace is stripped" in line
    assert SECRET not in out
    monkeypatch.setenv("LARK_APP_SECRET", " \r\n")
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 1 and "MISSING" in out and "only whitespace" in out


def test_validate_env_checks_the_runbooks_postgres_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`echo $POSTGRES_HOST; echo $POSTGRES_PORT` in the runbooks: the parts are judged,
    named when missing, and the password is never shown."""
    monkeypatch.setenv("LARK_APP_ID", "cli_a1b2c3")
    monkeypatch.setenv("LARK_APP_SECRET", SECRET)
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pg-Pa55word")
    code, out, _ = run(capsys, ["validate-env", "-o", "json"])
    status = {v["variable"]: (v["status"], v["detail"]) for v in json.loads(out)["variables"]}
    assert code == 1
    assert status["POSTGRES_HOST"] == ("OK", "db.internal")
    assert status["POSTGRES_PORT"] == ("UNSET", "optional; defaults to 5432")
    assert status["POSTGRES_USER"] == ("MISSING", "required with POSTGRES_HOST")
    assert status["POSTGRES_PASSWORD"][0] == "OK" and "pg-Pa55word" not in out
    assert "DATABASE_URL" not in status  # configured by parts
    monkeypatch.setenv("POSTGRES_USER", "lark")
    monkeypatch.setenv("POSTGRES_PORT", "5433")
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 0, out
    # A URL variable wins over the parts, and says so.
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    code, out, _ = run(capsys, ["validate-env"])
    assert "POSTGRES_HOST" in out and "ignored: DATABASE_URL wins" in out
    # Parts without a host.
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("POSTGRES_HOST")
    code, out, _ = run(capsys, ["validate-env"])
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("POSTGRES_HOST ")]
    assert "MISSING" in line


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


@pytest.mark.parametrize("argv", [["--all"], []], ids=["--all", "no selection"])
def test_all_probes_what_is_configured_and_lists_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    code, out, err = run(capsys, ["health-check", *argv])
    assert code == 1, out + err  # the configured probe ran, and found it down
    assert out.splitlines()[1].split()[:3] == ["redis", "NO", "Unreachable"]
    assert "postgres: not configured (set DATABASE_URL or LARK_DATABASE_URL or " in out
    assert "POSTGRES_HOST)" in out
    assert "rabbitmq: not configured (set RABBITMQ_URL or " in out
    code, out, _ = run(capsys, ["health-check", *argv, "-o", "json"])
    doc = json.loads(out)
    assert [r["dependency"] for r in doc["results"]] == ["redis"]
    assert [n["dependency"] for n in doc["not_configured"]] == ["postgres", "rabbitmq"]


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


def test_larkapp_all_lists_the_probes_it_does_not_configure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def targets(namespace: str, name: str, dependencies: Any = None) -> list:
        found = [ProbeTarget("redis", "redis://127.0.0.1:1/0", timeout=1)]
        return [t for t in found if dependencies is None or t.dependency in dependencies]

    module = types.ModuleType("lark_operator.cli.cluster")
    module.resolve_probe_targets = targets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lark_operator.cli.cluster", module)
    code, out, _ = run(capsys, ["health-check", "--larkapp", "team-a/orders", "--all"])
    assert code == 1
    assert "postgres: not configured (LarkApp team-a/orders has no spec.probes.postgres)" in out
    code, _, err = run(capsys, ["health-check", "--larkapp", "team-a/orders", "--database"])
    assert code == 2 and "configures no probe of postgres" in err
