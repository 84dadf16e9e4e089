"""The pure diagnosis functions of each probe, against thresholds."""

from __future__ import annotations

import pytest

from lark_operator import models
from lark_operator.probes import postgres, rabbitmq, redis
from lark_operator.probes import result as r


def pg_stats(**kw: object) -> postgres.PostgresStats:
    base: dict = {"server_version": "15.18", "max_connections": 100, "connections": 5}
    return postgres.PostgresStats(**{**base, **kw})


def reasons(findings: list) -> list[str]:
    return [f.reason for f in findings]


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


def test_redis_memory() -> None:
    info = {"used_memory": 95, "maxmemory": 100, "redis_version": "7.0", "evicted_keys": 4}
    findings, details = redis.diagnose_info(info, 90)
    assert reasons(findings) == [r.MEMORY_PRESSURE]
    assert details["usedMemoryPercent"] == "95"
    assert "4 keys evicted" in findings[0].message
    assert redis.diagnose_info({**info, "used_memory": 80}, 90)[0] == []
    # maxmemory 0 = unlimited: never pressure
    assert redis.diagnose_info({**info, "maxmemory": 0}, 90)[0] == []
    # at or above the limit is pressure whatever the configured percentage
    assert reasons(redis.diagnose_info({**info, "used_memory": 100}, 101)[0]) == [r.MEMORY_PRESSURE]


def watch(**kw: object) -> models.QueueWatch:
    return models.QueueWatch.model_validate({"name": "jobs", **kw})


def test_queue_diagnosis() -> None:
    assert rabbitmq.diagnose_queue(watch(), 0, 0) == []
    assert reasons(rabbitmq.diagnose_queue(watch(), 3, 0)) == [r.NO_CONSUMERS]
    assert rabbitmq.diagnose_queue(watch(requireConsumers=False), 3, 0) == []
    assert reasons(rabbitmq.diagnose_queue(watch(maxReady=5), 6, 2)) == [r.QUEUE_BACKLOG]
    assert reasons(rabbitmq.diagnose_queue(watch(maxReady=5), 6, 0)) == [
        r.NO_CONSUMERS,
        r.QUEUE_BACKLOG,
    ]
    missing = rabbitmq.diagnose_queue(watch(), None, None)
    assert reasons(missing) == [r.NO_CONSUMERS] and "does not exist" in missing[0].message


def test_node_alarms() -> None:
    nodes = [
        {"name": "rabbit@a", "mem_alarm": False, "disk_free_alarm": False},
        {"name": "rabbit@b", "mem_alarm": True, "disk_free_alarm": True},
        {"name": "rabbit@c"},  # stats not collected yet: no alarm known
    ]
    findings = rabbitmq.diagnose_nodes(nodes)
    assert reasons(findings) == [r.ALARM_RAISED, r.ALARM_RAISED]
    assert all("rabbit@b" in f.message for f in findings)


def test_current_alarms_win_over_lagging_node_flags() -> None:
    nodes = [{"name": "rabbit@a", "mem_alarm": False, "mem_used": 9, "mem_limit": 8}]
    alarms = [
        {"node": "rabbit@a", "resource": "memory"},
        {"node": "rabbit@b", "resource": "disk space"},
    ]
    findings = rabbitmq.diagnose_nodes(nodes, alarms)
    assert [f.message.split(" (")[0] for f in findings] == [
        "memory alarm on rabbit@a",
        "disk alarm on rabbit@b",
    ]
    assert "mem_used 9 of limit 8" in findings[0].message
    assert rabbitmq.diagnose_nodes([{"name": "x", "mem_alarm": True}], []) == []
