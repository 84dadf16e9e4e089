"""probe_redis against a real redis-server 7."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from lark_operator import models
from lark_operator.probes import result as r
from lark_operator.probes.redis import probe_redis
from tests.fixtures.servers import RedisServer, SilentListener

pytestmark = pytest.mark.integration

RedisFactory = Callable[..., RedisServer]


def assert_no_password(res: r.ProbeResult, *passwords: str) -> None:
    text = f"{res.message} {res.details} {res.to_dict()}"
    for password in passwords:
        assert password not in text


async def test_healthy(redis_server: RedisServer) -> None:
    res = await probe_redis(redis_server.url, 5)
    assert (res.healthy, res.reason) == (True, r.HEALTHY), res.message
    assert res.details["redisVersion"].startswith("7.")
    assert res.details["role"] == "master"
    assert res.details["maxMemory"] == "0"
    assert int(res.details["connectedClients"]) >= 1
    assert res.latency_ms is not None and 0 < res.latency_ms < 1000
    assert_no_password(res, redis_server.password or "")


@pytest.mark.parametrize("password", ["Wrong-Pa55word", ""])
async def test_wrong_or_missing_password_is_auth_failed(
    redis_server: RedisServer, password: str
) -> None:
    url = redis_server.url_for(password=password) if password else redis_server.url_for("")
    res = await probe_redis(url, 5)
    assert res.reason == r.AUTH_FAILED, res.message
    assert_no_password(res, redis_server.password or "", "Wrong-Pa55word")


async def test_a_wrong_one_letter_password_leaves_the_message_intact(
    redis_server: RedisServer,
) -> None:
    res = await probe_redis(redis_server.url_for("i"), 5)
    assert res.reason == r.AUTH_FAILED, res.message
    assert res.message.startswith(f"127.0.0.1:{redis_server.port} rejected the credentials: ")
    assert "invalid username-password pair" in res.message  # not 'inv***l***d'
    text = f"{res.message} {res.details} {res.to_dict()}"
    assert re.search(r"(?<!\w)i(?!\w)", text) is None
    assert_no_password(res, redis_server.password or "")


async def test_silent_server_times_out_within_the_timeout(
    silent_listener: SilentListener,
) -> None:
    started = time.monotonic()
    res = await probe_redis(silent_listener.url("redis", ":Secret-pw") + "0", 1.0)
    elapsed = time.monotonic() - started
    assert res.reason == r.TIMEOUT, res.message
    assert 0.9 < elapsed < 1.6
    assert_no_password(res, "Secret-pw")


async def test_stop_is_unreachable_and_start_recovers(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    assert (await probe_redis(server.url, 5)).healthy
    server.stop()
    res = await probe_redis(server.url, 5)
    assert res.reason == r.UNREACHABLE, res.message
    assert_no_password(res, server.password or "")
    server.start()
    res = await probe_redis(server.url, 5)
    assert res.healthy, res.message


async def test_full_redis_is_memory_pressure(redis_factory: RedisFactory) -> None:
    server = redis_factory(maxmemory="4mb", maxmemory_policy="noeviction")
    cfg = models.RedisProbe.model_validate({"urlSecretRef": {"name": "r"}, "maxMemoryPercent": 90})
    assert (await probe_redis(server.url, 5, cfg)).healthy
    client = aioredis.Redis.from_url(server.url)
    try:
        with pytest.raises(OutOfMemoryError):
            for i in range(200):
                await client.set(f"fill:{i}", b"x" * 64 * 1024)
    finally:
        await client.aclose()
    res = await probe_redis(server.url, 5, cfg)
    assert res.reason == r.MEMORY_PRESSURE, res.message
    assert int(res.details["usedMemoryPercent"]) >= 90
    assert res.details["maxMemoryPolicy"] == "noeviction"
