"""probes/redis.py: driver exceptions -> reasons with the password scrubbed (the driver is
faked; the real server is in tests/integration/probes), and the memory diagnosis."""

from __future__ import annotations

import pytest
from redis import exceptions as rexc

from lark_operator.probes import redis
from lark_operator.probes import result as r
from tests.unit.probes.drivers import REDIS_URL, SECRET, assert_no_secret, raising, reasons


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (rexc.AuthenticationError("invalid username-password pair"), r.AUTH_FAILED),
        (rexc.ResponseError("WRONGPASS invalid username-password pair"), r.AUTH_FAILED),
        (rexc.ResponseError("NOAUTH Authentication required."), r.AUTH_FAILED),
        (rexc.OutOfMemoryError("OOM command not allowed"), r.MEMORY_PRESSURE),
        (rexc.ConnectionError(f"Error 111 connecting to {REDIS_URL}"), r.UNREACHABLE),
        (rexc.BusyLoadingError("LOADING"), r.UNREACHABLE),
        (rexc.TimeoutError("Timeout reading from socket"), r.TIMEOUT),
        (rexc.ResponseError("ERR unknown command"), r.PROBE_ERROR),
    ],
)
async def test_redis_classification(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, reason: str
) -> None:
    class FakeClient:
        ping = raising(exc)

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr(redis.aioredis.Redis, "from_url", lambda *a, **k: FakeClient())
    res = await redis.probe_redis(REDIS_URL, 2)
    assert (res.healthy, res.reason) == (False, reason)
    assert_no_secret(res)


async def test_invalid_url() -> None:
    res = await redis.probe_redis(f"http://:{SECRET}@cache:6379", 1)
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


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
