"""probe_postgres against a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from lark_operator import models
from lark_operator.probes import postgres as pg
from lark_operator.probes import result as r
from tests.fixtures.servers import PostgresReplication, PostgresServer, SilentListener
from tests.integration.probes.poll import until

PgFactory = Callable[..., PostgresServer]

pytestmark = pytest.mark.integration


def assert_no_password(res: r.ProbeResult, *passwords: str) -> None:
    text = f"{res.message} {res.details} {res.to_dict()}"
    for password in passwords:
        assert password not in text


async def test_healthy(postgres_server: PostgresServer) -> None:
    res = await pg.probe_postgres(postgres_server.dsn, 5)
    assert (res.healthy, res.reason) == (True, r.HEALTHY), res.message
    assert res.details["serverVersion"].startswith("15.")
    assert res.details["role"] == "primary"
    assert res.details["endpoint"] == f"127.0.0.1:{postgres_server.port}"
    assert res.latency_ms is not None and 0 < res.latency_ms < 1000
    assert res.details["connections"].endswith("/100")
    assert_no_password(res, postgres_server.password)


async def test_wrong_password_is_auth_failed(postgres_server: PostgresServer) -> None:
    res = await pg.probe_postgres(postgres_server.dsn_for(password="Wrong-Pa55word"), 5)
    assert res.reason == r.AUTH_FAILED, res.message
    assert "password authentication failed" in res.message
    assert_no_password(res, "Wrong-Pa55word", postgres_server.password)


async def test_a_wrong_one_letter_password_leaves_the_message_intact(
    postgres_server: PostgresServer,
) -> None:
    """Masking 'a' wherever it occurs would read 'p***ssword ***uthentic***tion': the
    server's message must come through as the server wrote it, and 'a' never alone."""
    res = await pg.probe_postgres(postgres_server.dsn_for(password="a"), 5)
    assert res.reason == r.AUTH_FAILED, res.message
    assert res.message == (
        f"127.0.0.1:{postgres_server.port} rejected the login: SQLSTATE 28P01: "
        f'password authentication failed for user "{postgres_server.user}"'
    )
    assert res.details["endpoint"] == f"127.0.0.1:{postgres_server.port}"
    text = f"{res.message} {res.details} {res.to_dict()}"
    assert re.search(r"(?<!\w)a(?!\w)", text) is None
    assert_no_password(res, postgres_server.password)


async def test_unknown_database_is_a_probe_error_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    res = await pg.probe_postgres(postgres_server.dsn_for(database="nope"), 5)
    assert res.reason == r.PROBE_ERROR and "3D000" in res.message
    assert_no_password(res, postgres_server.password)


async def test_silent_server_times_out_within_the_timeout(
    silent_listener: SilentListener,
) -> None:
    started = time.monotonic()
    res = await pg.probe_postgres(silent_listener.url("postgresql", "u:Secret-pw") + "db", 1.0)
    elapsed = time.monotonic() - started
    assert res.reason == r.TIMEOUT, res.message
    assert 0.9 < elapsed < 1.6
    assert_no_password(res, "Secret-pw")


async def test_stop_is_unreachable_and_start_recovers(postgres_factory: PgFactory) -> None:
    server: PostgresServer = postgres_factory()
    assert (await pg.probe_postgres(server.dsn, 5)).healthy
    server.stop()
    res = await pg.probe_postgres(server.dsn, 5)
    assert res.reason == r.UNREACHABLE, res.message
    assert_no_password(res, server.password)
    server.start()
    res = await pg.probe_postgres(server.dsn, 5)
    assert res.healthy, res.message


async def test_too_many_connections(postgres_factory: PgFactory) -> None:
    server: PostgresServer = postgres_factory(max_connections=10, superuser_reserved_connections=0)
    held = [await asyncpg.connect(server.dsn) for _ in range(8)]
    try:
        # the probe's own connection is the 9th of 10: 90% >= maxConnectionsPercent 90
        res = await pg.probe_postgres(server.dsn, 5)
        assert res.reason == r.TOO_MANY_CONNECTIONS, res.message
        assert res.details["connections"] == "9/10"
        held += [await asyncpg.connect(server.dsn) for _ in range(2)]
        # now the server refuses the probe itself: still TooManyConnections, not Unreachable
        res = await pg.probe_postgres(server.dsn, 5)
        assert res.reason == r.TOO_MANY_CONNECTIONS, res.message
        assert "too many clients" in res.message
    finally:
        await asyncio.gather(*(c.close() for c in held))
    res = await pg.probe_postgres(server.dsn, 5)
    assert res.healthy, res.message


async def test_deadlocks_since_the_last_probe(postgres_server: PostgresServer) -> None:
    state: dict = {}
    assert (await pg.probe_postgres(postgres_server.dsn, 5, state=state)).healthy
    await _make_a_deadlock(postgres_server.dsn)
    res = None
    for _ in range(30):  # the statistics reach pg_stat_database within about a second
        res = await pg.probe_postgres(postgres_server.dsn, 5, state=state)
        if res.reason == r.DEADLOCKS:
            break
        await asyncio.sleep(0.1)
    assert res is not None and res.reason == r.DEADLOCKS, res and res.message
    assert res.details["deadlocksSinceLastProbe"] == "1"
    # counted once: the next probe is healthy again
    assert (await pg.probe_postgres(postgres_server.dsn, 5, state=state)).healthy


async def _make_a_deadlock(dsn: str) -> None:
    a, b = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await a.execute("CREATE TABLE IF NOT EXISTS dl (id int primary key, v int)")
        await a.execute("INSERT INTO dl VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING")
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await a.execute("UPDATE dl SET v = v + 1 WHERE id = 1")
        await b.execute("UPDATE dl SET v = v + 1 WHERE id = 2")
        outcomes = await asyncio.gather(
            a.execute("UPDATE dl SET v = v + 1 WHERE id = 2"),
            b.execute("UPDATE dl SET v = v + 1 WHERE id = 1"),
            return_exceptions=True,
        )
        assert any(isinstance(o, asyncpg.DeadlockDetectedError) for o in outcomes), outcomes
        for tx in (ta, tb):
            await tx.rollback()
    finally:
        await a.close()
        await b.close()


async def test_long_running_query_is_reported(postgres_server: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        sleeper = asyncio.create_task(conn.execute("SELECT pg_sleep(1.5)"))
        await asyncio.sleep(0.8)
        res = await pg.probe_postgres(postgres_server.dsn, 5)
        assert res.healthy
        assert float(res.details["longestQuerySeconds"]) >= 0.5
        await sleeper
    finally:
        await conn.close()


LAG_2S = models.PostgresProbe.model_validate(
    {"dsnSecretRef": {"name": "db"}, "maxReplicationLagSeconds": 2}
)


async def test_replica_lag_while_replay_is_paused_then_recovery(
    postgres_replication: PostgresReplication,
) -> None:
    """Probing the replica itself: pg_stat_replication there is empty (it lists servers
    replicating from it), so the replica's own replay lag is what must show."""
    pair = postgres_replication

    def replica() -> Awaitable[r.ProbeResult]:
        return pg.probe_postgres(pair.replica.dsn, 5, LAG_2S)

    def primary() -> Awaitable[r.ProbeResult]:
        return pg.probe_postgres(pair.primary.dsn, 5, LAG_2S)

    with pair.writing():
        res = await replica()
        assert res.healthy, res.message
        assert (res.details["role"], res.details["replayPaused"]) == ("replica", "false")
        pair.wait_caught_up()  # the lag then counts from a replayed commit
        pair.pause_replay()
        res = await until(replica, r.REPLICATION_LAG, 20)
        assert res.reason == r.REPLICATION_LAG, res.message
        assert float(res.details["replayLagSeconds"]) >= 2  # shown to 0.1 s
        assert res.details["replayPaused"] == "true"
        assert "this replica replays" in res.message and "replay is paused" in res.message
        # The primary sees the same replica through pg_stat_replication.replay_lag.
        res = await until(primary, r.REPLICATION_LAG, 20)
        assert res.reason == r.REPLICATION_LAG, res.message
        assert f"replica {pair.standby_name} replays" in res.message
        pair.resume_replay()
        res = await until(replica, r.HEALTHY, 20)
        assert res.healthy, res.message
        assert res.details["replayPaused"] == "false"
        assert float(res.details["replayLagSeconds"]) <= 2
    assert_no_password(res, pair.replica.password)


async def test_replica_paused_before_replaying_any_commit_still_reports_lag(
    postgres_replication: PostgresReplication,
) -> None:
    """With no commit replayed since the replica started there is no replay timestamp:
    the lag then counts from the replica's start, not 'unknown, so healthy'."""
    pair = postgres_replication
    pair.pause_replay()
    assert pair.replica.psql("SELECT pg_last_xact_replay_timestamp() IS NULL") == "t"

    def replica() -> Awaitable[r.ProbeResult]:
        return pg.probe_postgres(pair.replica.dsn, 5, LAG_2S)

    with pair.writing():
        res = await until(replica, r.REPLICATION_LAG, 20)
        assert res.reason == r.REPLICATION_LAG, res.message
        pair.resume_replay()
        res = await until(replica, r.HEALTHY, 20)
        assert res.healthy, res.message
