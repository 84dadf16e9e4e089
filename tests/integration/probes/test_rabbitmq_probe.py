"""probe_rabbitmq against a real RabbitMQ 3.10 with the management plugin."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiormq
import pytest

from lark_operator import models
from lark_operator.probes import result as r
from lark_operator.probes.rabbitmq import probe_rabbitmq
from tests.fixtures.servers import RabbitMQServer, SilentListener
from tests.integration.probes.poll import until  # management statistics lag a little

pytestmark = pytest.mark.integration


def assert_no_password(res: r.ProbeResult, *passwords: str) -> None:
    text = f"{res.message} {res.details} {res.to_dict()}"
    for password in passwords:
        assert password not in text


def watching(*queues: dict) -> models.RabbitMQProbe:
    return models.RabbitMQProbe.model_validate({"urlSecretRef": {"name": "mq"}, "queues": queues})


@pytest.fixture
async def queue(rabbitmq_server: RabbitMQServer) -> AsyncIterator[Callable]:
    """publish(n) -> a fresh queue name holding n ready messages (deleted afterwards)."""
    conn = await aiormq.connect(rabbitmq_server.url)
    channel = await conn.channel()
    names: list[str] = []

    async def publish(n: int) -> str:
        name = f"q-{uuid.uuid4().hex[:8]}"
        await channel.queue_declare(name)
        for i in range(n):
            await channel.basic_publish(f"m{i}".encode(), routing_key=name)
        names.append(name)
        return name

    yield publish
    for name in names:
        await channel.queue_delete(name)
    await conn.close()


async def test_healthy_with_management(rabbitmq_server: RabbitMQServer) -> None:
    res = await probe_rabbitmq(
        rabbitmq_server.url, 5, management_url=rabbitmq_server.management_url
    )
    assert (res.healthy, res.reason) == (True, r.HEALTHY), res.message
    assert res.details["rabbitmqVersion"].startswith("3.")
    assert res.details["erlangVersion"]
    assert res.details["nodes"] == "1"
    assert res.latency_ms is not None and 0 < res.latency_ms < 1000
    assert_no_password(res, rabbitmq_server.password)


async def test_healthy_without_management(rabbitmq_server: RabbitMQServer) -> None:
    res = await probe_rabbitmq(rabbitmq_server.url, 5)
    assert res.healthy, res.message
    assert res.details["product"] == "RabbitMQ"


async def test_wrong_password_is_auth_failed(rabbitmq_server: RabbitMQServer) -> None:
    res = await probe_rabbitmq(rabbitmq_server.url_for(password="Wrong-Pa55word"), 5)
    assert res.reason == r.AUTH_FAILED, res.message
    assert "ACCESS_REFUSED" in res.message
    assert_no_password(res, "Wrong-Pa55word", rabbitmq_server.password)


async def test_wrong_management_password_is_auth_failed(rabbitmq_server: RabbitMQServer) -> None:
    mgmt = rabbitmq_server.management_url_for(password="Wrong-Pa55word")
    res = await probe_rabbitmq(rabbitmq_server.url, 5, management_url=mgmt)
    assert res.reason == r.AUTH_FAILED, res.message
    assert "HTTP 401" in res.message
    assert_no_password(res, "Wrong-Pa55word", rabbitmq_server.password)


async def test_silent_broker_times_out_within_the_timeout(
    silent_listener: SilentListener,
) -> None:
    started = time.monotonic()
    res = await probe_rabbitmq(silent_listener.url("amqp", "u:Secret-pw"), 1.0)
    elapsed = time.monotonic() - started
    assert res.reason == r.TIMEOUT, res.message
    assert 0.9 < elapsed < 1.6
    assert_no_password(res, "Secret-pw")


async def test_silent_management_api_times_out(
    rabbitmq_server: RabbitMQServer, silent_listener: SilentListener
) -> None:
    mgmt = silent_listener.url("http", "u:Secret-pw")
    res = await probe_rabbitmq(rabbitmq_server.url, 1.0, management_url=mgmt)
    assert res.reason == r.TIMEOUT, res.message
    assert "management API" in res.message
    assert_no_password(res, "Secret-pw", rabbitmq_server.password)


@pytest.mark.parametrize("management", [True, False])
async def test_messages_without_consumer(
    rabbitmq_server: RabbitMQServer, queue: Callable, management: bool
) -> None:
    name = await queue(3)
    mgmt = rabbitmq_server.management_url if management else None
    cfg = watching({"name": name})
    res = await until(lambda: probe_rabbitmq(rabbitmq_server.url, 5, cfg, mgmt), r.NO_CONSUMERS)
    assert res.reason == r.NO_CONSUMERS, res.message
    assert res.details[f"queue.//{name}"] == "ready=3 consumers=0"


@pytest.mark.parametrize("management", [True, False])
async def test_backlog_over_max_ready(
    rabbitmq_server: RabbitMQServer, queue: Callable, management: bool
) -> None:
    name = await queue(6)
    mgmt = rabbitmq_server.management_url if management else None
    cfg = watching({"name": name, "maxReady": 5, "requireConsumers": False})
    res = await until(lambda: probe_rabbitmq(rabbitmq_server.url, 5, cfg, mgmt), r.QUEUE_BACKLOG)
    assert res.reason == r.QUEUE_BACKLOG, res.message
    assert "6 ready messages (maxReady 5" in res.message


async def test_missing_watched_queue(rabbitmq_server: RabbitMQServer) -> None:
    cfg = watching({"name": "never-declared"})
    for mgmt in (rabbitmq_server.management_url, None):
        res = await probe_rabbitmq(rabbitmq_server.url, 5, cfg, mgmt)
        assert res.reason == r.NO_CONSUMERS and "does not exist" in res.message


@pytest.mark.parametrize("resource", ["memory", "disk"])
async def test_alarm_is_alarm_raised(rabbitmq_server: RabbitMQServer, resource: str) -> None:
    mgmt = rabbitmq_server.management_url
    alarm = f"{{resource_limit, {resource}, node()}}"
    rabbitmq_server.ctl("eval", f"rabbit_alarm:set_alarm({{{alarm}, []}}).")
    try:
        res = await probe_rabbitmq(rabbitmq_server.url, 5, None, mgmt)
        assert res.reason == r.ALARM_RAISED, res.message
        assert f"{resource} alarm on {rabbitmq_server.nodename}" in res.message
    finally:
        rabbitmq_server.ctl("eval", f"rabbit_alarm:clear_alarm({alarm}).")
    res = await probe_rabbitmq(rabbitmq_server.url, 5, None, mgmt)
    assert res.healthy, res.message


async def test_stop_is_unreachable_and_start_recovers(
    rabbitmq_factory: Callable[[], RabbitMQServer],
) -> None:
    server = rabbitmq_factory()
    assert (await probe_rabbitmq(server.url, 5, management_url=server.management_url)).healthy
    server.stop(kill=True)  # a crash; a polite stop only costs the test 6 s more
    res = await probe_rabbitmq(server.url, 5, management_url=server.management_url)
    assert res.reason == r.UNREACHABLE, res.message
    assert_no_password(res, server.password)
    server.start()
    res = await probe_rabbitmq(server.url, 5, management_url=server.management_url)
    assert res.healthy, res.message
