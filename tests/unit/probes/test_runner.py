"""probes/runner.py: the guarantees every probe gets (timeout naming the stage, never raising,
metrics observed once, cancellation passed on)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lark_operator import metrics
from lark_operator.probes import result as r
from lark_operator.probes.runner import ProbeFailed, run_probe
from tests.helpers.clock import Clock, loop_time
from tests.unit.probes.drivers import AMQP_URL, assert_no_secret


async def test_runner_timeout_names_the_stage_and_keeps_partial_details() -> None:
    async def body(progress: Any) -> r.ProbeResult:
        progress.details["endpoint"] = "h:1"
        progress.stage = "reading INFO"
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    clock = Clock()
    with loop_time(clock):  # the 0.2 s, not the machine's load, decides
        started = clock()
        res = await run_probe("redis", 0.2, (), body, lambda exc: None)
        assert clock() - started < 1
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
