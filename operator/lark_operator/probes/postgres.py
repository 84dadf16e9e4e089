"""PostgreSQL probe: connect, SELECT 1, then read what the troubleshooting runbook checks
by hand (connections, long queries, deadlocks, replication lag) from the statistics views.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from lark_operator import models
from lark_operator.probes import dsn
from lark_operator.probes.result import (
    AUTH_FAILED,
    DEADLOCKS,
    PROBE_ERROR,
    REPLICATION_LAG,
    TOO_MANY_CONNECTIONS,
    UNREACHABLE,
    Finding,
    ProbeResult,
    diagnose,
)
from lark_operator.probes.runner import Progress, run_probe

# Set on every probe connection so DBAs (and our tests) can tell probes apart in
# pg_stat_activity and in connection logs.
APPLICATION_NAME = "lark-operator-probe"

_DEFAULTS = models.PostgresProbe.model_fields

_STATS_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend')::int AS connections,
       (SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)::float8
          FROM pg_stat_activity
         WHERE state = 'active' AND backend_type = 'client backend'
           AND pid <> pg_backend_pid()) AS longest_query_seconds,
       (SELECT deadlocks FROM pg_stat_database
         WHERE datname = current_database())::bigint AS deadlocks,
       pg_is_in_recovery() AS in_recovery
"""
# A replica's own lag: pg_stat_replication lists the servers replicating FROM this one,
# so a replica reads its lag itself. Caught up (all received WAL replayed) is 0; behind, it
# is the time since the last replayed transaction committed on the primary (or, if none was
# replayed since the replica started, since it started), which grows while replay is
# paused or slow and the primary writes. Not streaming (no WAL receiver, e.g. restoring
# from an archive): unknown.
_REPLAY_SQL = """
SELECT pg_is_wal_replay_paused() AS paused,
       CASE WHEN pg_last_wal_receive_lsn() IS NULL THEN NULL
            WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM clock_timestamp() - coalesce(
                     pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))
       END::float8 AS lag_seconds
"""
# replay_lag is NULL for roles without pg_read_all_stats (grant pg_monitor to see it).
_REPLICATION_SQL = """
SELECT coalesce(application_name, '') AS name,
       extract(epoch FROM replay_lag)::float8 AS lag_seconds
  FROM pg_stat_replication
"""


@dataclass(frozen=True)
class PostgresStats:
    server_version: str
    max_connections: int
    connections: int
    longest_query_seconds: float = 0.0
    deadlocks: int | None = None
    in_recovery: bool = False
    replication_lag: dict[str, float] = field(default_factory=dict)  # replica -> seconds
    replay_lag: float | None = None  # this server's own, when it is a replica
    replay_paused: bool = False


@dataclass(frozen=True)
class PostgresThresholds:
    max_connections_percent: int = _DEFAULTS["max_connections_percent"].default
    max_replication_lag_seconds: int = _DEFAULTS["max_replication_lag_seconds"].default
    deadlocks_per_interval: int = _DEFAULTS["deadlocks_per_interval"].default

    @classmethod
    def of(cls, cfg: models.PostgresProbe | None) -> PostgresThresholds:
        if cfg is None:
            return cls()
        return cls(
            cfg.max_connections_percent,
            cfg.max_replication_lag_seconds,
            cfg.deadlocks_per_interval,
        )


def deadlocks_since(previous: int | None, current: int | None) -> int:
    """Deadlocks between two readings of the cumulative counter (0 without a baseline)."""
    if previous is None or current is None:
        return 0
    return current if current < previous else current - previous  # < : stats were reset


def diagnose_stats(
    stats: PostgresStats, limits: PostgresThresholds, new_deadlocks: int
) -> tuple[list[Finding], dict[str, Any]]:
    """Pure: findings and details from one reading of the statistics."""
    percent = 100.0 * stats.connections / stats.max_connections if stats.max_connections else 0.0
    max_lag = max(stats.replication_lag.values(), default=None)
    details: dict[str, Any] = {
        "serverVersion": stats.server_version,
        "role": "replica" if stats.in_recovery else "primary",
        "connections": f"{stats.connections}/{stats.max_connections}",
        "connectionsPercent": f"{percent:.0f}",
        "longestQuerySeconds": f"{stats.longest_query_seconds:.1f}",
        "deadlocksSinceLastProbe": str(new_deadlocks),
    }
    if stats.replication_lag:
        details["replicas"] = str(len(stats.replication_lag))
        details["replicationLagSeconds"] = f"{max_lag:.1f}"
    if stats.in_recovery:
        details["replayPaused"] = str(stats.replay_paused).lower()
        if stats.replay_lag is not None:
            details["replayLagSeconds"] = f"{stats.replay_lag:.1f}"
    findings: list[Finding] = []
    if percent >= limits.max_connections_percent:
        findings.append(
            Finding(
                TOO_MANY_CONNECTIONS,
                f"{stats.connections} of max_connections={stats.max_connections} in use "
                f"({percent:.0f}% >= {limits.max_connections_percent}%)",
            )
        )
    if max_lag is not None and max_lag > limits.max_replication_lag_seconds:
        worst = max(stats.replication_lag, key=lambda k: stats.replication_lag[k])
        findings.append(
            Finding(
                REPLICATION_LAG,
                f"replica {worst or '(unnamed)'} replays {max_lag:.1f}s behind "
                f"(> {limits.max_replication_lag_seconds}s)",
            )
        )
    limit = limits.max_replication_lag_seconds
    if stats.replay_lag is not None and stats.replay_lag > limit:
        paused = "; replay is paused (pg_wal_replay_resume() resumes it)"
        findings.append(
            Finding(
                REPLICATION_LAG,
                f"this replica replays {stats.replay_lag:.1f}s behind its primary (> {limit}s)"
                + (paused if stats.replay_paused else ""),
            )
        )
    if new_deadlocks and new_deadlocks >= limits.deadlocks_per_interval:
        findings.append(Finding(DEADLOCKS, f"{new_deadlocks} deadlock(s) since the last probe"))
    return findings, details


async def probe_postgres(
    dsn_url: str,
    timeout: float,
    cfg: models.PostgresProbe | None = None,
    state: dict[str, Any] | None = None,
) -> ProbeResult:
    """Probe one PostgreSQL server. `state` carries the deadlock counter between probes
    of the same target (the scheduler keeps one dict per target)."""
    state = state if state is not None else {}
    limits = PostgresThresholds.of(cfg)
    endpoint = ""

    async def body(progress: Progress) -> ProbeResult:
        nonlocal endpoint
        parsed = dsn.parse(dsn_url, dsn.SCHEMES["postgres"])
        endpoint = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        progress.details["endpoint"] = endpoint
        conn = await asyncpg.connect(
            dsn_url,
            timeout=timeout,
            statement_cache_size=0,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            progress.stage = "running SELECT 1"
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            latency_ms = (time.perf_counter() - started) * 1000
            progress.stage = "reading pg_stat_activity, pg_stat_database and replication"
            stats = await _read_stats(conn)
            progress.stage = "closing the connection"
            await conn.close(timeout=max(timeout / 2, 0.1))
        finally:
            if not conn.is_closed():
                conn.terminate()
        new_deadlocks = deadlocks_since(state.get("deadlocks"), stats.deadlocks)
        if stats.deadlocks is not None:
            state["deadlocks"] = stats.deadlocks
        findings, details = diagnose_stats(stats, limits, new_deadlocks)
        return diagnose(
            "postgres",
            findings,
            latency_ms=latency_ms,
            details={"endpoint": endpoint, **details},
            healthy_message=f"PostgreSQL {stats.server_version} answered in {latency_ms:.1f}ms "
            f"({details['connections']} connections)",
        )

    def classify(exc: BaseException) -> Finding | None:
        where = endpoint or "the server"
        if isinstance(
            exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return Finding(AUTH_FAILED, f"{where} rejected the login: {_server_error(exc)}")
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return Finding(
                TOO_MANY_CONNECTIONS, f"{where} refused a new connection: {_server_error(exc)}"
            )
        if isinstance(exc, asyncpg.CannotConnectNowError):
            return Finding(
                UNREACHABLE, f"{where} is not accepting connections: {_server_error(exc)}"
            )
        if isinstance(exc, asyncpg.PostgresError):
            return Finding(PROBE_ERROR, f"{where} answered {_server_error(exc)}")
        if isinstance(exc, ssl.SSLError):
            return Finding(PROBE_ERROR, f"TLS with {where} failed: {type(exc).__name__}")
        if isinstance(exc, OSError | asyncpg.InterfaceError):
            return Finding(UNREACHABLE, f"cannot connect to {where}: {_os_reason(exc)}")
        return None

    return await run_probe("postgres", timeout, (dsn_url,), body, classify)


async def _read_stats(conn: asyncpg.Connection) -> PostgresStats:
    row = await conn.fetchrow(_STATS_SQL)
    replicas = await conn.fetch(_REPLICATION_SQL)
    replay = await conn.fetchrow(_REPLAY_SQL) if row["in_recovery"] else None
    return PostgresStats(
        server_version=row["server_version"],
        max_connections=row["max_connections"],
        connections=row["connections"],
        longest_query_seconds=row["longest_query_seconds"] or 0.0,
        deadlocks=row["deadlocks"],
        in_recovery=row["in_recovery"],
        replication_lag={
            r["name"]: r["lag_seconds"] for r in replicas if r["lag_seconds"] is not None
        },
        replay_lag=replay["lag_seconds"] if replay else None,
        replay_paused=bool(replay and replay["paused"]),
    )


def _server_error(exc: asyncpg.PostgresError) -> str:
    """The server's own error fields (SQLSTATE and primary message), not the exception's
    text: that is what the server said, and the server never repeats the password."""
    message = getattr(exc, "message", None) or (exc.args[0] if exc.args else "")
    return f"SQLSTATE {exc.sqlstate}: {message}" if message else f"SQLSTATE {exc.sqlstate}"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
