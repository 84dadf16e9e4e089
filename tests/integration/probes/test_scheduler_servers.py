"""ProbeScheduler against real servers: sharing counted on the server side, isolation.
(Which interval and how many probes in a span, exactly: tests/unit/probes/test_scheduler.py
on a fake clock.)"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Hashable

import pytest

from lark_operator import models
from lark_operator.probes import result as r
from lark_operator.probes.postgres import APPLICATION_NAME
from lark_operator.probes.scheduler import ProbeScheduler
from tests.fixtures.servers import (
    PostgresServer,
    RedisServer,
    SilentListener,
    connection_times,
)
from tests.integration.probes.poll import eventually

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
    before = len(connection_times(server, APPLICATION_NAME))
    inbox, sched = Inbox(), ProbeScheduler()
    for i in range(50):
        # every LarkApp names its own Secret; the DSN inside is the same
        cfg = models.PostgresProbe.model_validate({"dsnSecretRef": {"name": f"app{i}-db"}})
        interval = 1.0 + (i % 5) * 0.5  # the shortest (1 s) wins
        sched.subscribe(("ns", f"app{i}"), "postgres", server.dsn, cfg, interval, 5, inbox)
    assert sched.stats()["targets"] == 1
    await sched.start()
    try:  # three probes (~0 s, 1 s, 2 s); stopped well before a fourth is due
        await eventually(
            lambda: len(inbox.got) == 50 and min(len(v) for v in inbox.got.values()) >= 3,
            15,
            "three probes delivered to every subscriber",
        )
    finally:
        await sched.stop()

    times = connection_times(server, APPLICATION_NAME)[before:]
    assert len(times) == 3  # one connection per probe, not one per subscriber
    assert len(inbox.got) == 50
    assert {len(v) for v in inbox.got.values()} == {3}
    assert all(res.healthy for v in inbox.got.values() for _, res in v)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(0.8 <= gap < 1.5 for gap in gaps), gaps  # the shortest interval (1 s) wins


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
        await eventually(lambda: len(inbox.got["ok-app"]) >= 4, 10, "four probes of redis")
        assert sched.stats()["running"] >= 1  # the hung probe is still waiting
        await eventually(lambda: inbox.got["hung-app"], 10, "the hung probe's timeout")
    finally:
        await sched.stop()
    (at, res), *_ = inbox.got["hung-app"]
    ok = [res for t, res in inbox.got["ok-app"] if t < at]
    assert len(ok) >= 4 and all(res.healthy for res in ok)  # served while the other hung
    assert res.reason == r.TIMEOUT
    assert 1.9 < at - started < 3.0  # its own timeout, not a queue behind others
