"""Diagnosis: one reason from many findings, by precedence."""

from __future__ import annotations

import pytest

from lark_operator.probes import result as r
from lark_operator.probes.result import Finding, diagnose
from lark_operator.vocabulary import hints
from lark_operator.vocabulary.reasons import Reason


def test_precedence_tiers() -> None:
    order = r.PRECEDENCE
    first_tier = {r.INVALID_URL, r.UNREACHABLE, r.TIMEOUT, r.AUTH_FAILED, r.PROBE_ERROR}
    second_tier = {r.ALARM_RAISED, r.TOO_MANY_CONNECTIONS, r.MEMORY_PRESSURE}
    third_tier = {r.REPLICATION_LAG, r.DEADLOCKS, r.NO_CONSUMERS, r.QUEUE_BACKLOG}
    assert set(order[:5]) == first_tier
    assert set(order[5:8]) == second_tier
    assert set(order[8:]) == third_tier


def test_every_reason_has_a_hint() -> None:
    for reason in (r.HEALTHY, *r.PRECEDENCE):
        assert reason in hints.HINTS, reason


@pytest.mark.parametrize(
    ("reasons", "winner"),
    [
        ([r.QUEUE_BACKLOG, r.NO_CONSUMERS], r.NO_CONSUMERS),
        ([r.QUEUE_BACKLOG, r.ALARM_RAISED, r.NO_CONSUMERS], r.ALARM_RAISED),
        ([r.DEADLOCKS, r.REPLICATION_LAG, r.TOO_MANY_CONNECTIONS], r.TOO_MANY_CONNECTIONS),
        ([r.MEMORY_PRESSURE, r.AUTH_FAILED], r.AUTH_FAILED),
        ([r.DEADLOCKS, r.REPLICATION_LAG], r.REPLICATION_LAG),
        ([r.TIMEOUT, r.ALARM_RAISED], r.TIMEOUT),
    ],
)
def test_worst_finding_names_the_reason(reasons: list[Reason], winner: Reason) -> None:
    findings = [Finding(reason, f"msg {reason}") for reason in reasons]
    res = diagnose("rabbitmq", findings, latency_ms=1.0, details={"a": 1}, healthy_message="ok")
    assert not res.healthy
    assert res.reason == winner
    assert res.message.startswith(f"msg {winner}")
    for other in set(reasons) - {winner}:
        assert f"{other}: msg {other}" in res.message
    assert res.details["problems"].split(",")[0] == winner
    assert set(res.details["problems"].split(",")) == set(reasons)
    assert res.hint == hints.HINTS[winner]


def test_no_findings_is_healthy_with_string_details() -> None:
    res = diagnose("redis", [], latency_ms=2.5, details={"n": 3, "x": None}, healthy_message="ok")
    assert (res.healthy, res.reason, res.message) == (True, r.HEALTHY, "ok")
    assert res.details == {"n": "3"}
    status = res.to_status()
    assert status["latencyMs"] == 2.5 and status["checkedAt"].endswith("Z")
    assert res.to_dict()["hint"] == "Nothing to do."


def test_failure_has_no_latency() -> None:
    res = r.failure("postgres", r.UNREACHABLE, "down")
    assert (res.healthy, res.reason, res.latency_ms) == (False, r.UNREACHABLE, None)
