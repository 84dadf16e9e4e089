"""`lark-operator health-check` against real PostgreSQL, Redis and RabbitMQ: exit codes,
output, and no password in any of it (without servers: tests/unit/cli/test_health.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.fixtures.servers import PostgresServer, RabbitMQServer, RedisServer
from tests.helpers.health_cli import clear_env, run


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(monkeypatch)


@pytest.mark.integration
def test_all_healthy_is_exit_0(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    rabbitmq_server: RabbitMQServer,
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_server.dsn)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("RABBITMQ_URL", rabbitmq_server.url)
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", rabbitmq_server.management_url)
    code, out, _ = run(capsys, ["health-check", "--all"])
    assert code == 0, out
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["DEPENDENCY", "HEALTHY", "REASON"]
    assert [row.split()[:3] for row in rows[1:]] == [
        ["postgres", "yes", "Healthy"],
        ["redis", "yes", "Healthy"],
        ["rabbitmq", "yes", "Healthy"],
    ]
    for server in (postgres_server, redis_server, rabbitmq_server):
        assert str(server.password) not in out


@pytest.mark.integration
def test_all_with_one_configured_probes_it_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    code, out, _ = run(capsys, ["health-check", "--all"])
    assert code == 0, out
    assert out.splitlines()[1].split()[:3] == ["redis", "yes", "Healthy"]
    assert "postgres: not configured" in out and "rabbitmq: not configured" in out
    assert str(redis_server.password) not in out


@pytest.mark.integration
def test_the_runbooks_postgres_variables_are_probed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, postgres_server: PostgresServer
) -> None:
    """POSTGRES_HOST/PORT/USER/PASSWORD/DB, as the runbooks' environment has them."""
    monkeypatch.setenv("POSTGRES_HOST", postgres_server.host)
    monkeypatch.setenv("POSTGRES_PORT", str(postgres_server.port))
    monkeypatch.setenv("POSTGRES_USER", postgres_server.user)
    monkeypatch.setenv("POSTGRES_PASSWORD", postgres_server.password + "\n")  # stripped
    monkeypatch.setenv("POSTGRES_DB", postgres_server.database)
    code, out, _ = run(capsys, ["health-check", "--database"])
    assert code == 0, out
    assert out.splitlines()[1].split()[:3] == ["postgres", "yes", "Healthy"]
    monkeypatch.setenv("POSTGRES_PASSWORD", "Wrong-Pa55word")
    code, out, _ = run(capsys, ["health-check", "--database"])
    assert code == 1 and "AuthFailed" in out
    assert "Wrong-Pa55word" not in out and postgres_server.password not in out


@pytest.mark.integration
def test_stopped_server_is_exit_1_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory()
    monkeypatch.setenv("REDIS_URL", server.url)
    assert run(capsys, ["health-check", "--redis"])[0] == 0
    server.stop()
    code, out, _ = run(capsys, ["health-check", "--redis"])
    assert code == 1
    assert "Unreachable" in out and "hint: Nothing answers" in out
    assert str(server.password) not in out
    server.start()
    assert run(capsys, ["health-check", "--redis"])[0] == 0


@pytest.mark.integration
def test_wrong_password_is_exit_1_in_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, postgres_server: PostgresServer
) -> None:
    monkeypatch.setenv("POSTGRES_DSN", postgres_server.dsn_for(password="Wrong-Pa55word"))
    code, out, _ = run(capsys, ["health-check", "--database", "-o", "json"])
    assert code == 1
    (res,) = json.loads(out)["results"]
    assert res["reason"] == "AuthFailed"
    assert "Wrong-Pa55word" not in out and postgres_server.password not in out


@pytest.mark.integration
def test_console_script_end_to_end(redis_server: RedisServer) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url}
    for var in ("DATABASE_URL", "LARK_DATABASE_URL", "POSTGRES_DSN", "RABBITMQ_URL"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "lark_operator", "health-check", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["dependency"] == "redis"
    assert str(redis_server.password) not in proc.stdout + proc.stderr
