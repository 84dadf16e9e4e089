"""ProbeScheduler against real servers: sharing counted on the server side, isolation."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Hashable

import pytest

from lark_operator import models
from lark_operator.probes import result as r
from lark_operator.probes.postgres import APPLICATION_NAME
from lark_operator.probes.scheduler import ProbeScheduler
from tests.fixtures.servers import PostgresServer, RedisServer, SilentListener

pytestmark = pytest.mark.integration


class Inbox:
    def __init__(self) -> None:
        self.got: dict[Hashable, list[tuple[float, r.ProbeResult]]] = defaultdict(list)

    async def __call__(self, subscriber: Hashable, res: r.ProbeResult) -> None:
        self.got[subscriber].append((time.monotonic(), res))


async def test_fifty_larkapps_sharing_one_postgres_make_one_probe_per_interval(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    server = postgres_factory()  # its own log: log_connections names every probe connection

    def probe_connections() -> int:
        return server.log_text().count(f"application_name={APPLICATION_NAME}")

    before = probe_connections()
    inbox, sched = Inbox(), ProbeScheduler()
    for i in range(50):
        # every LarkApp names its own Secret; the DSN inside is the same
        cfg = models.PostgresProbe.model_validate({"dsnSecretRef": {"name": f"app{i}-db"}})
        interval = 1.0 + (i % 5) * 0.5  # the shortest (1 s) wins
        sched.subscribe(("ns", f"app{i}"), "postgres", server.dsn, cfg, interval, 5, inbox)
    assert sched.stats()["targets"] == 1
    await sched.start()
    await asyncio.sleep(2.5)  # probes at ~0 s, 1 s, 2 s
    await sched.stop()

    assert probe_connections() - before == 3
    assert len(inbox.got) == 50
    assert {len(v) for v in inbox.got.values()} == {3}
    assert all(res.healthy for v in inbox.got.values() for _, res in v)


async def test_a_hung_dependency_does_not_delay_another(
    redis_server: RedisServer, silent_listener: SilentListener
) -> None:
    inbox, sched = Inbox(), ProbeScheduler()
    hung = silent_listener.url("postgresql", "u:pw") + "db"
    sched.subscribe("hung-app", "postgres", hung, None, 0.2, 2.0, inbox)
    sched.subscribe("ok-app", "redis", redis_server.url, None, 0.2, 2.0, inbox)
    started = time.monotonic()
    await sched.start()
    try:
        await asyncio.sleep(1.0)
        assert sched.stats()["running"] >= 1  # the hung probe is still waiting
        assert inbox.got["hung-app"] == []
        ok = inbox.got["ok-app"]
        assert len(ok) >= 4 and all(res.healthy for _, res in ok)
        await asyncio.sleep(1.9)
    finally:
        await sched.stop()
    (at, res), *_ = inbox.got["hung-app"]
    assert res.reason == r.TIMEOUT
    assert 1.9 < at - started < 3.0  # its own timeout, not a queue behind others
