"""probes/postgres.py: driver exceptions -> reasons with the password scrubbed (the driver is
faked; the real server is in tests/integration/probes), and the pure diagnosis against
thresholds."""

from __future__ import annotations

import asyncpg
import pytest

from lark_operator import models
from lark_operator.probes import dsn, postgres
from lark_operator.probes import result as r
from tests.unit.probes.drivers import PG_URL, SECRET, assert_no_secret, raising, reasons


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            asyncpg.InvalidPasswordError('password authentication failed for user "app"'),
            r.AUTH_FAILED,
        ),
        (asyncpg.InvalidAuthorizationSpecificationError("no pg_hba.conf entry"), r.AUTH_FAILED),
        (
            asyncpg.TooManyConnectionsError("sorry, too many clients already"),
            r.TOO_MANY_CONNECTIONS,
        ),
        (asyncpg.CannotConnectNowError("the database system is starting up"), r.UNREACHABLE),
        (ConnectionRefusedError(111, "Connection refused"), r.UNREACHABLE),
        (OSError(f"could not connect to {PG_URL}"), r.UNREACHABLE),
        (asyncpg.InvalidCatalogNameError('database "app" does not exist'), r.PROBE_ERROR),
        (ValueError(f"weird failure with {PG_URL}"), r.PROBE_ERROR),
    ],
)
async def test_postgres_classification(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, reason: str
) -> None:
    monkeypatch.setattr(postgres.asyncpg, "connect", raising(exc))
    res = await postgres.probe_postgres(PG_URL, 2)
    assert (res.healthy, res.reason) == (False, reason)
    assert res.details["endpoint"] == "db.internal:5432"
    assert_no_secret(res)


async def test_a_one_letter_password_leaves_the_server_message_intact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exc = asyncpg.InvalidPasswordError('password authentication failed for user "app"')
    monkeypatch.setattr(postgres.asyncpg, "connect", raising(exc))
    res = await postgres.probe_postgres("postgresql://app:a@db.internal:5432/app", 2)
    assert res.message == (
        "db.internal:5432 rejected the login: SQLSTATE 28P01: password authentication failed "
        'for user "app"'
    )


async def test_a_driver_text_echoing_the_password_is_withheld(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exc = OSError(f"could not connect to {PG_URL}: password {SECRET} refused")
    monkeypatch.setattr(postgres.asyncpg, "connect", raising(exc))
    res = await postgres.probe_postgres(PG_URL, 2)
    assert (res.reason, res.message) == (r.UNREACHABLE, dsn.WITHHELD)
    assert res.details["endpoint"] == "db.internal:5432"


async def test_unexpected_exception_reports_the_type_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres.asyncpg, "connect", raising(KeyError(f"dsn={PG_URL}")))
    res = await postgres.probe_postgres(PG_URL, 2)
    assert res.reason == r.PROBE_ERROR
    assert res.message == "unexpected KeyError while connecting"


async def test_invalid_url() -> None:
    res = await postgres.probe_postgres(f"mysql://app:{SECRET}@db/x", 1)
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


def pg_stats(**kw: object) -> postgres.PostgresStats:
    base: dict = {"server_version": "15.18", "max_connections": 100, "connections": 5}
    return postgres.PostgresStats(**{**base, **kw})


def test_postgres_healthy_details() -> None:
    findings, details = postgres.diagnose_stats(
        pg_stats(longest_query_seconds=2.25), postgres.PostgresThresholds(), 0
    )
    assert findings == []
    assert details["connections"] == "5/100"
    assert details["role"] == "primary"
    assert details["longestQuerySeconds"] == "2.2"


@pytest.mark.parametrize(("used", "expected"), [(89, []), (90, [r.TOO_MANY_CONNECTIONS])])
def test_postgres_connections_threshold_is_inclusive(used: int, expected: list[str]) -> None:
    findings, _ = postgres.diagnose_stats(
        pg_stats(connections=used), postgres.PostgresThresholds(), 0
    )
    assert reasons(findings) == expected


def test_postgres_thresholds_come_from_the_spec() -> None:
    cfg = models.PostgresProbe.model_validate(
        {
            "dsnSecretRef": {"name": "db"},
            "maxConnectionsPercent": 50,
            "maxReplicationLagSeconds": 5,
            "deadlocksPerInterval": 3,
        }
    )
    limits = postgres.PostgresThresholds.of(cfg)
    stats = pg_stats(connections=50, replication_lag={"replica-a": 1.0, "replica-b": 6.5})
    findings, details = postgres.diagnose_stats(stats, limits, 2)
    assert reasons(findings) == [r.TOO_MANY_CONNECTIONS, r.REPLICATION_LAG]
    assert "replica-b" in findings[1].message
    assert details["replicationLagSeconds"] == "6.5"
    findings, _ = postgres.diagnose_stats(pg_stats(), limits, 3)
    assert reasons(findings) == [r.DEADLOCKS]


@pytest.mark.parametrize(
    ("lag", "paused", "expected"),
    [(0.0, False, []), (5.0, True, []), (5.1, False, [r.REPLICATION_LAG]), (None, True, [])],
)
def test_postgres_replica_reports_its_own_replay_lag(
    lag: float | None, paused: bool, expected: list[str]
) -> None:
    stats = pg_stats(in_recovery=True, replay_lag=lag, replay_paused=paused)
    findings, details = postgres.diagnose_stats(stats, postgres.PostgresThresholds(30, 5, 1), 0)
    assert reasons(findings) == expected
    assert (details["role"], details["replayPaused"]) == ("replica", str(paused).lower())
    assert details.get("replayLagSeconds") == (None if lag is None else f"{lag:.1f}")


def test_postgres_lag_message_says_replay_is_paused() -> None:
    stats = pg_stats(in_recovery=True, replay_lag=12.04, replay_paused=True)
    findings, _ = postgres.diagnose_stats(stats, postgres.PostgresThresholds(30, 5, 1), 0)
    assert findings[0].message == (
        "this replica replays 12.0s behind its primary (> 5s); replay is paused "
        "(pg_wal_replay_resume() resumes it)"
    )


def test_postgres_primary_has_no_replay_details() -> None:
    _, details = postgres.diagnose_stats(pg_stats(), postgres.PostgresThresholds(), 0)
    assert "replayPaused" not in details and "replayLagSeconds" not in details


def test_postgres_default_thresholds_match_the_crd_defaults() -> None:
    assert postgres.PostgresThresholds() == postgres.PostgresThresholds(90, 30, 1)


@pytest.mark.parametrize(
    ("previous", "current", "delta"),
    [(None, 7, 0), (7, 7, 0), (7, 9, 2), (9, 1, 1), (3, None, 0)],
)
def test_deadlocks_since(previous: int | None, current: int | None, delta: int) -> None:
    assert postgres.deadlocks_since(previous, current) == delta
