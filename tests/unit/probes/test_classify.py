"""Exceptions from the drivers -> reasons, with the password scrubbed, and the runner's
guarantees (timeout, never raising, metrics once). Drivers are faked here; the real
servers are in tests/integration/probes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiormq
import asyncpg
import pytest
from redis import exceptions as rexc

from lark_operator import metrics
from lark_operator.probes import dsn, postgres, rabbitmq, redis
from lark_operator.probes import result as r
from lark_operator.probes.runner import ProbeFailed, run_probe

SECRET = "hunter2-secret"
PG_URL = f"postgresql://app:{SECRET}@db.internal:5432/app"
REDIS_URL = f"redis://:{SECRET}@cache.internal:6379/0"
AMQP_URL = f"amqp://app:{SECRET}@mq.internal:5672/"


def assert_no_secret(res: r.ProbeResult) -> None:
    text = res.message + repr(res.details) + repr(res.to_dict())
    assert SECRET not in text


def raising(exc: BaseException) -> Any:
    async def fake(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fake


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


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            aiormq.exceptions.ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"),
            r.AUTH_FAILED,
        ),
        (aiormq.exceptions.ConnectionClosed(530, "NOT_ALLOWED - vhost x not found"), r.AUTH_FAILED),
        (aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - shutdown"), r.UNREACHABLE),
        (aiormq.exceptions.AMQPConnectionError(111, "Connect call failed"), r.UNREACHABLE),
        (aiormq.exceptions.IncompatibleProtocolError("EOF"), r.PROBE_ERROR),
        (ConnectionRefusedError(111, "Connection refused"), r.UNREACHABLE),
    ],
)
async def test_rabbitmq_classification(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, reason: str
) -> None:
    monkeypatch.setattr(rabbitmq.aiormq, "connect", raising(exc))
    res = await rabbitmq.probe_rabbitmq(AMQP_URL, 2)
    assert (res.healthy, res.reason) == (False, reason)
    assert res.details["endpoint"] == "mq.internal:5672"
    assert_no_secret(res)


@pytest.mark.parametrize(
    ("probe", "url"),
    [
        (postgres.probe_postgres, f"mysql://app:{SECRET}@db/x"),
        (redis.probe_redis, f"http://:{SECRET}@cache:6379"),
        (rabbitmq.probe_rabbitmq, f"amqp://app:{SECRET}@mq:notaport/"),
    ],
)
async def test_invalid_url(probe: Any, url: str) -> None:
    res = await probe(url, 1)
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


async def test_invalid_management_url() -> None:
    res = await rabbitmq.probe_rabbitmq(AMQP_URL, 1, management_url=f"ftp://u:{SECRET}@x/")
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


async def test_runner_timeout_names_the_stage_and_keeps_partial_details() -> None:
    async def body(progress: Any) -> r.ProbeResult:
        progress.details["endpoint"] = "h:1"
        progress.stage = "reading INFO"
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    started = time.monotonic()
    res = await run_probe("redis", 0.2, (), body, lambda exc: None)
    assert time.monotonic() - started < 1
    assert res.reason == r.TIMEOUT
    assert res.message == "no answer within 0.2s while reading INFO"
    assert res.details["endpoint"] == "h:1"


async def test_runner_probe_failed_and_metrics_observed_once() -> None:
    async def body(progress: Any) -> r.ProbeResult:
        raise ProbeFailed(r.AUTH_FAILED, f"rejected {AMQP_URL}")

    def count() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "lark_service_probes_total", {"dependency": "rabbitmq", "reason": r.AUTH_FAILED}
        )
        return value or 0.0

    def durations() -> float:
        value = metrics.REGISTRY.get_sample_value(
            "lark_service_probe_duration_seconds_count", {"dependency": "rabbitmq"}
        )
        return value or 0.0

    before, before_d = count(), durations()
    res = await run_probe("rabbitmq", 1, (AMQP_URL,), body, lambda exc: None)
    assert res.reason == r.AUTH_FAILED
    assert_no_secret(res)
    assert count() == before + 1
    assert durations() == before_d + 1


async def test_cancellation_is_not_swallowed() -> None:
    async def body(progress: Any) -> r.ProbeResult:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    task = asyncio.create_task(run_probe("redis", 5, (), body, lambda exc: None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
