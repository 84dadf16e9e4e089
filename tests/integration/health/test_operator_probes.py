"""Dependency health as users see it: the operator probes real PostgreSQL, Redis and
RabbitMQ for LarkApps and reports through conditions, status.probes, Events and metrics."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest

from lark_operator.probes.postgres import APPLICATION_NAME
from tests.fixtures.servers import connection_times
from tests.helpers.env import Env
from tests.helpers.wait import always, eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_probe01", "s3cret-probe-value"


def _env(env_factory: Any, **kw: Any) -> Env:
    env = env_factory({APP: SECRET}, **kw)
    env.app_secret("lark-secret", SECRET)
    return env


def _dep_secret(env: Env, name: str, data: dict[str, str]) -> None:
    env.secrets.update(v for v in data.values())
    env.kube.put_secret(env.ns, name, data)


def _cond(env: Env, name: str, ctype: str) -> dict[str, Any]:
    return env.kube.condition(env.ns, name, ctype) or {}


def _probe_spec(interval: str = "5s", timeout: str = "2s", **deps: Any) -> dict[str, Any]:
    return {"interval": interval, "timeout": timeout, **deps}


def test_healthy_path_for_all_three(
    env_factory: Any, postgres_server: Any, redis_server: Any, rabbitmq_server: Any
) -> None:
    env = _env(env_factory)
    _dep_secret(
        env,
        "deps",
        {
            "dsn": postgres_server.dsn,
            "url": redis_server.url,
            "amqp": rabbitmq_server.url,
            "mgmt": rabbitmq_server.management_url_for(),
        },
    )
    env.larkapp(
        "app",
        APP,
        probes=_probe_spec(
            postgres={"dsnSecretRef": {"name": "deps", "key": "dsn"}},
            redis={"urlSecretRef": {"name": "deps"}},
            rabbitmq={
                "urlSecretRef": {"name": "deps", "key": "amqp"},
                "managementUrlSecretRef": {"name": "deps", "key": "mgmt"},
            },
        ),
    )
    eventually(lambda: env.ready("app"), 40, what="Ready with all probes healthy")
    st = env.kube.larkapp(env.ns, "app")["status"]
    for dep, ctype in (
        ("postgres", "PostgresHealthy"),
        ("redis", "RedisHealthy"),
        ("rabbitmq", "RabbitMQHealthy"),
    ):
        assert _cond(env, "app", ctype)["status"] == "True", ctype
        probe = st["probes"][dep]
        assert probe["healthy"] is True and probe["reason"] == "Healthy"
        assert probe["latencyMs"] > 0
        assert any("version" in k.lower() for k in probe["details"]), probe["details"]
    out = env.kube.kubectl("get", "larkapp", "app", "-n", env.ns).stdout
    assert out.count("Healthy") == 3, out
    metrics = env.op.metrics()
    for dep in ("postgres", "redis", "rabbitmq"):
        assert re.search(
            rf'lark_service_probe_up\{{dependency="{dep}",name="app",'
            rf'namespace="{env.ns}"\}} 1\.0',
            metrics,
        ), dep
    assert "lark_service_probe_duration_seconds_count" in metrics


def test_server_stopped_and_restarted_gives_one_event_each_way(
    env_factory: Any, postgres_factory: Any, redis_factory: Any
) -> None:
    pg, rd = postgres_factory(), redis_factory()
    env = _env(env_factory)
    _dep_secret(env, "deps", {"dsn": pg.dsn, "url": rd.url})
    env.larkapp(
        "app",
        APP,
        probes=_probe_spec(
            postgres={"dsnSecretRef": {"name": "deps", "key": "dsn"}},
            redis={"urlSecretRef": {"name": "deps"}},
        ),
    )
    eventually(lambda: env.ready("app"), 40)

    for server, ctype, dep in ((pg, "PostgresHealthy", "postgres"), (rd, "RedisHealthy", "redis")):
        server.stop()
        t0 = time.monotonic()
        eventually(
            lambda ctype=ctype: _cond(env, "app", ctype).get("reason") == "Unreachable",
            12,
            what=f"{ctype} Unreachable within one interval",
        )
        assert time.monotonic() - t0 <= 5 + 2 + 3  # interval + timeout + slack
        obj = env.kube.larkapp(env.ns, "app")
        assert obj["status"]["phase"] == "Degraded"  # the token is still good
        ready = _cond(env, "app", "Ready")
        assert ready["reason"] == "Unreachable" and "Hint:" in ready["message"]
        # Two more failing probes (still one Event, counted at the end).
        failed = env.op.metric("lark_service_probes_total", dependency=dep, reason="Unreachable")
        eventually(
            lambda dep=dep, failed=failed: (
                env.op.metric("lark_service_probes_total", dependency=dep, reason="Unreachable")
                >= failed + 2
            ),
            20,
            what=f"two more failing {dep} probes",
        )
        server.start()
        eventually(lambda ctype=ctype: _cond(env, "app", ctype).get("status") == "True", 15)
    eventually(lambda: env.ready("app"), 15)
    reasons = env.kube.event_reasons(env.ns, "app")
    assert reasons.count("ProbeFailed") == 2, reasons
    assert reasons.count("ProbeRecovered") == 2, reasons


def test_wrong_password_reads_auth_failed(
    env_factory: Any, postgres_server: Any, redis_factory: Any, rabbitmq_server: Any
) -> None:
    rd = redis_factory(password="right-redis-pw")
    env = _env(env_factory)
    _dep_secret(
        env,
        "deps",
        {
            "dsn": postgres_server.dsn_for(password="wrong-pg-pw"),
            "url": rd.url_for("wrong-redis-pw"),
            "amqp": rabbitmq_server.url_for(password="wrong-mq-pw"),
        },
    )
    env.larkapp(
        "app",
        APP,
        probes=_probe_spec(
            postgres={"dsnSecretRef": {"name": "deps", "key": "dsn"}},
            redis={"urlSecretRef": {"name": "deps"}},
            rabbitmq={"urlSecretRef": {"name": "deps", "key": "amqp"}},
        ),
    )
    for ctype in ("PostgresHealthy", "RedisHealthy", "RabbitMQHealthy"):
        eventually(
            lambda ctype=ctype: _cond(env, "app", ctype).get("reason") == "AuthFailed",
            30,
            what=f"{ctype} AuthFailed",
        )
    st = env.kube.larkapp(env.ns, "app")["status"]
    for pw in ("wrong-pg-pw", "wrong-redis-pw", "wrong-mq-pw"):
        assert pw not in str(st)


def test_silent_listener_times_out_and_does_not_delay_token_refresh(
    env_factory: Any, silent_listener: Any
) -> None:
    """Token ttl 70 s with renewBefore 1m: renewals every ~10 s must go on while every
    probe of this LarkApp hangs until its timeout."""
    env = _env(env_factory, token_ttl=70, reissue_window=65)
    _dep_secret(
        env, "deps", {"dsn": silent_listener.url("postgresql"), "url": silent_listener.url("redis")}
    )
    env.larkapp(
        "app",
        APP,
        probes=_probe_spec(
            timeout="3s",
            postgres={"dsnSecretRef": {"name": "deps", "key": "dsn"}},
            redis={"urlSecretRef": {"name": "deps"}},
        ),
    )
    first = eventually(lambda: env.token("app"), 30)
    eventually(lambda: _cond(env, "app", "PostgresHealthy").get("reason") == "Timeout", 15)
    assert _cond(env, "app", "RedisHealthy").get("reason") == "Timeout"
    latency = env.kube.larkapp(env.ns, "app")["status"]["probes"]["postgres"].get("latencyMs")
    assert latency is None or latency <= 3500
    seen = [first]
    eventually(
        lambda: (t := env.token("app")) != seen[-1] and seen.append(t) is None and len(seen) >= 3,
        40,
        interval=0.5,
        what="two renewals during hung probes",
    )
    assert _cond(env, "app", "TokenReady")["status"] == "True"


def test_diagnoses_connections_memory_and_queues(
    env_factory: Any, postgres_factory: Any, redis_factory: Any, rabbitmq_server: Any
) -> None:
    import asyncio

    import aio_pika
    import asyncpg

    pg = postgres_factory(max_connections=12, superuser_reserved_connections=2)
    rd = redis_factory(maxmemory="2mb")
    env = _env(env_factory)

    async def hold_connections() -> list[Any]:
        return [await asyncpg.connect(pg.dsn) for _ in range(9)]

    async def fill_queue() -> None:
        conn = await aio_pika.connect(rabbitmq_server.url)
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue("orders", durable=True)
            for i in range(30):
                await ch.default_exchange.publish(
                    aio_pika.Message(body=b"x" * i), routing_key="orders"
                )

    loop = asyncio.new_event_loop()
    held = loop.run_until_complete(hold_connections())
    loop.run_until_complete(fill_queue())
    import redis as redis_sync

    r = redis_sync.Redis.from_url(rd.url)
    try:
        for i in range(4000):
            r.set(f"k{i}", "v" * 1000)
    except redis_sync.exceptions.ResponseError:
        pass  # OOM: full
    _dep_secret(
        env,
        "deps",
        {
            "dsn": pg.dsn,
            "url": rd.url,
            "amqp": rabbitmq_server.url,
            "mgmt": rabbitmq_server.management_url_for(),
        },
    )
    env.larkapp(
        "conns",
        APP,
        probes=_probe_spec(
            postgres={"dsnSecretRef": {"name": "deps", "key": "dsn"}, "maxConnectionsPercent": 80}
        ),
    )
    env.larkapp("mem", APP, probes=_probe_spec(redis={"urlSecretRef": {"name": "deps"}}))
    env.larkapp(
        "queue",
        APP,
        probes=_probe_spec(
            rabbitmq={
                "urlSecretRef": {"name": "deps", "key": "amqp"},
                "managementUrlSecretRef": {"name": "deps", "key": "mgmt"},
                "queues": [{"name": "orders", "maxReady": 10}],
            }
        ),
    )
    try:
        eventually(
            lambda: _cond(env, "conns", "PostgresHealthy").get("reason") == "TooManyConnections", 30
        )
        eventually(lambda: _cond(env, "mem", "RedisHealthy").get("reason") == "MemoryPressure", 30)
        eventually(
            lambda: (
                _cond(env, "queue", "RabbitMQHealthy").get("reason")
                in ("NoConsumers", "QueueBacklog")
            ),
            40,
        )
        msg = _cond(env, "queue", "RabbitMQHealthy")["message"]
        assert "orders" in msg
        for name in ("conns", "mem", "queue"):
            assert env.kube.larkapp(env.ns, name)["status"]["phase"] == "Degraded"
    finally:
        for c in held:
            loop.run_until_complete(c.close())
        loop.close()
        r.flushall()


def test_fifty_larkapps_sharing_a_postgres_make_one_probe_per_interval(
    env_factory: Any, postgres_factory: Any
) -> None:
    pg = postgres_factory()
    env = _env(env_factory)
    _dep_secret(env, "db", {"dsn": pg.dsn})
    for i in range(50):
        env.larkapp(
            f"app-{i:02d}",
            APP,
            probes=_probe_spec(postgres={"dsnSecretRef": {"name": "db", "key": "dsn"}}),
        )
    eventually(
        lambda: all(
            _cond(env, f"app-{i:02d}", "PostgresHealthy").get("status") == "True" for i in range(50)
        ),
        60,
        interval=1,
    )
    c0 = len(connection_times(pg, APPLICATION_NAME))
    # Four more probes, however long the machine takes; the gaps between them (the server's
    # own log times) say one probe per 5 s interval, not one per LarkApp.
    eventually(
        lambda: len(connection_times(pg, APPLICATION_NAME)) >= c0 + 4,
        45,
        interval=1,
        what="four more probes",
    )
    times = connection_times(pg, APPLICATION_NAME)[c0 - 1 :]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(4.0 <= gap <= 5 + 3 for gap in gaps), gaps


def test_unchanged_health_writes_no_status_while_metrics_move(
    env_factory: Any, redis_server: Any
) -> None:
    env = _env(env_factory)
    _dep_secret(env, "deps", {"url": redis_server.url})
    env.larkapp("app", APP, probes=_probe_spec(redis={"urlSecretRef": {"name": "deps"}}))
    eventually(lambda: env.ready("app"), 30)

    def probes_run() -> float:
        return env.op.metric("lark_service_probes_total", dependency="redis", reason="Healthy")

    def resource_version() -> str:
        return str(env.kube.larkapp(env.ns, "app")["metadata"]["resourceVersion"])

    ran = probes_run()  # let the first probe's write settle: one more probe after Ready
    eventually(lambda: probes_run() > ran, 15, what="a probe after Ready")
    rv0 = resource_version()
    n0 = probes_run()
    always(
        lambda: resource_version() == rv0,
        45,
        interval=0.5,
        what="no status write while health is unchanged",
        until=lambda: probes_run() - n0 >= 5,  # five more probe cycles at interval 5s
    )
    assert probes_run() - n0 >= 4
