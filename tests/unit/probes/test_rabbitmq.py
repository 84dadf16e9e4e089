"""probes/rabbitmq.py: driver exceptions -> reasons with the password scrubbed (the driver is
faked; the real server is in tests/integration/probes), and the queue and node diagnosis."""

from __future__ import annotations

from typing import Any

import aiormq
import pytest

from lark_operator import models
from lark_operator.probes import rabbitmq
from lark_operator.probes import result as r
from tests.unit.probes.drivers import AMQP_URL, SECRET, assert_no_secret, raising, reasons


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


async def test_invalid_url() -> None:
    res = await rabbitmq.probe_rabbitmq(f"amqp://app:{SECRET}@mq:notaport/", 1)
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


async def test_invalid_management_url() -> None:
    res = await rabbitmq.probe_rabbitmq(AMQP_URL, 1, management_url=f"ftp://u:{SECRET}@x/")
    assert res.reason == r.INVALID_URL
    assert_no_secret(res)


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
    nodes: list[dict[str, Any]] = [
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
