"""ProbeScheduler with fake probers: sharing, rescheduling, isolation, bounds. Tests that
count probes over a span of time run the event loop on the fake clock (`loop_time`): the
span is exact, however loaded the machine."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import pytest

from lark_operator import models
from lark_operator.probes import result as r
from lark_operator.probes.scheduler import ProbeScheduler, target_key
from lark_operator.probes.target import ProbeTarget
from tests.helpers.clock import Clock, loop_time

URL = "postgresql://app:pw@db:5432/app"


class FakeProber:
    """Counts calls per URL; optionally sleeps (a hung server) per URL."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.delays = delays or {}
        self.running = 0
        self.max_running = 0
        self.targets: list[ProbeTarget] = []

    async def __call__(self, target: ProbeTarget, state: dict[str, Any]) -> r.ProbeResult:
        self.calls[target.url] += 1
        self.targets.append(target)
        state["n"] = state.get("n", 0) + 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delays.get(target.url, 0))
        finally:
            self.running -= 1
        return r.ProbeResult(
            target.dependency, True, r.HEALTHY, f"probe {state['n']}", 1.0, {"url": target.url}
        )


class Inbox:
    def __init__(self) -> None:
        self.got: dict[Hashable, list[r.ProbeResult]] = defaultdict(list)

    async def __call__(self, subscriber: Hashable, res: r.ProbeResult) -> None:
        self.got[subscriber].append(res)


def make(prober: FakeProber, **kw: Any) -> ProbeScheduler:
    return ProbeScheduler(probers={"postgres": prober, "redis": prober}, **kw)


async def test_fifty_subscribers_share_one_probe_per_interval() -> None:
    prober, inbox, clock = FakeProber(), Inbox(), Clock()
    with loop_time(clock):
        sched = make(prober, clock=clock)
        for i in range(50):
            sched.subscribe(("ns", f"app{i}"), "postgres", URL, None, 0.3 + i * 0.01, 5, inbox)
        assert sched.stats()["targets"] == 1
        await sched.start()
        await asyncio.sleep(0.75)  # probes at 0, 0.3, 0.6 (the shortest interval)
        await sched.stop()
    assert prober.calls[URL] == 3
    assert {len(v) for v in inbox.got.values()} == {3}
    assert len(inbox.got) == 50


async def test_secret_ref_names_are_not_part_of_the_key() -> None:
    a = models.PostgresProbe.model_validate({"dsnSecretRef": {"name": "a-db"}})
    b = models.PostgresProbe.model_validate({"dsnSecretRef": {"name": "b-db", "key": "x"}})
    c = models.PostgresProbe.model_validate(
        {"dsnSecretRef": {"name": "a-db"}, "maxConnectionsPercent": 50}
    )
    assert target_key("postgres", URL, None, a) == target_key("postgres", URL, None, b)
    assert target_key("postgres", URL, None, a) != target_key("postgres", URL, None, c)
    assert target_key("postgres", URL, None, a) != target_key("postgres", URL + "x", None, a)
    assert "pw" not in repr(target_key("postgres", URL, None, a))


async def test_resubscribe_is_a_noop_and_url_change_moves_the_subscriber() -> None:
    prober, inbox = FakeProber(), Inbox()
    sched = make(prober)
    key1 = sched.subscribe("app", "postgres", URL, None, 10, 5, inbox)
    assert sched.subscribe("app", "postgres", URL, None, 10, 5, inbox) == key1
    await sched.run_once()
    assert prober.calls[URL] == 1
    other = URL.replace("db:", "db2:")
    key2 = sched.subscribe("app", "postgres", other, None, 10, 5, inbox)
    assert key2 != key1
    assert sched.stats()["targets"] == 1  # the old target lost its only subscriber
    await sched.run_once()
    assert prober.calls[other] == 1 and prober.calls[URL] == 1


async def test_unsubscribe_drops_targets_without_subscribers() -> None:
    prober, inbox = FakeProber(), Inbox()
    sched = make(prober)
    sched.subscribe("a", "postgres", URL, None, 10, 5, inbox)
    sched.subscribe("a", "redis", "redis://cache:6379", None, 10, 5, inbox)
    sched.subscribe("b", "postgres", URL, None, 10, 5, inbox)
    assert sched.stats() == {
        "targets": 2,
        "subscribers": 2,
        "subscriptions": 3,
        "running": 0,
        "maxConcurrency": 16,
    }
    sched.unsubscribe("a")
    assert sched.stats()["targets"] == 1 and sched.stats()["subscribers"] == 1
    sched.unsubscribe("b", "postgres")
    sched.unsubscribe("nobody")
    assert sched.stats()["targets"] == 0


async def test_target_uses_shortest_interval_and_timeout() -> None:
    prober, inbox, clock = FakeProber(), Inbox(), Clock()
    with loop_time(clock):
        sched = make(prober, clock=clock)
        sched.subscribe("slow", "postgres", URL, None, 30, 5, inbox)
        sched.subscribe("fast", "postgres", URL, None, 0.2, 2, inbox)
        await sched.start()
        await asyncio.sleep(0.5)
        sched.unsubscribe("fast")  # back to 30 s: no more probes in this test
        calls = prober.calls[URL]
        await asyncio.sleep(0.4)
        await sched.stop()
    assert calls >= 2
    assert prober.calls[URL] == calls
    assert prober.targets[0].timeout == 2


async def test_new_subscriber_gets_the_last_result_at_once() -> None:
    prober, inbox = FakeProber(), Inbox()
    sched = make(prober)
    sched.subscribe("first", "postgres", URL, None, 60, 5, inbox)
    await sched.run_once()
    sched.subscribe("second", "postgres", URL, None, 60, 5, inbox)
    await asyncio.sleep(0.01)
    assert [x.message for x in inbox.got["second"]] == ["probe 1"]
    assert sched.last_result("second", "postgres") is inbox.got["second"][0]
    assert prober.calls[URL] == 1
    await sched.stop()


async def test_a_hung_target_does_not_delay_another() -> None:
    hung = "postgresql://app:pw@hung:5432/app"
    prober, inbox, clock = FakeProber({hung: 5}), Inbox(), Clock()
    with loop_time(clock):
        sched = make(prober, clock=clock)
        sched.subscribe("h", "postgres", hung, None, 0.1, 5, inbox)
        sched.subscribe("ok", "redis", "redis://cache:6379", None, 0.1, 5, inbox)
        await sched.start()
        await asyncio.sleep(0.55)
        assert sched.stats()["running"] >= 1
        await sched.stop()
    assert len(inbox.got["ok"]) >= 5
    assert inbox.got["h"] == []
    assert prober.calls[hung] == 1  # never two probes of one target at once


async def test_concurrency_is_bounded() -> None:
    prober, inbox = FakeProber({f"redis://h{i}:6379": 0.2 for i in range(6)}), Inbox()
    clock = Clock()
    with loop_time(clock):
        sched = make(prober, max_concurrency=2, clock=clock)
        for i in range(6):
            sched.subscribe(f"app{i}", "redis", f"redis://h{i}:6379", None, 60, 5, inbox)
        started = clock()
        await sched.run_once()
    assert prober.max_running == 2
    assert clock() - started >= 0.55  # three waves of 0.2 s
    assert len(inbox.got) == 6


async def test_state_persists_per_target_and_callbacks_are_isolated() -> None:
    prober = FakeProber()
    got: list[str] = []

    async def broken(subscriber: Hashable, res: r.ProbeResult) -> None:
        raise RuntimeError("callback bug")

    async def fine(subscriber: Hashable, res: r.ProbeResult) -> None:
        got.append(res.message)

    sched = make(prober)
    sched.subscribe("broken", "postgres", URL, None, 60, 5, broken)
    sched.subscribe("fine", "postgres", URL, None, 60, 5, fine)
    await sched.run_once()
    await sched.run_once()
    assert got == ["probe 1", "probe 2"]  # the state dict carried the counter


async def test_a_raising_prober_becomes_probe_error() -> None:
    async def bad(target: ProbeTarget, state: dict[str, Any]) -> r.ProbeResult:
        raise RuntimeError(f"boom {target.url}")

    inbox = Inbox()
    sched = ProbeScheduler(probers={"postgres": bad})
    sched.subscribe("a", "postgres", URL, None, 60, 5, inbox)
    results = await sched.run_once()
    (res,) = results.values()
    assert res.reason == r.PROBE_ERROR and "pw" not in res.message


async def test_stop_cancels_running_probes() -> None:
    prober, inbox, clock = FakeProber({URL: 30}), Inbox(), Clock()
    with loop_time(clock):
        sched = make(prober, clock=clock)
        sched.subscribe("a", "postgres", URL, None, 1, 60, inbox)
        await sched.start()
        await asyncio.sleep(0.05)
        assert sched.stats()["running"] == 1
        await asyncio.wait_for(sched.stop(), 1)
    assert sched.stats()["running"] == 0


def test_subscribe_rejects_non_positive_periods() -> None:
    sched = ProbeScheduler()
    with pytest.raises(ValueError):
        sched.subscribe("a", "postgres", URL, None, 0, 5, Inbox())


def test_probe_target_repr_hides_the_password() -> None:
    target = ProbeTarget("postgres", URL, None, "http://u:mgmtpw@h/", 5)
    assert "pw" not in repr(target).replace("postgres", "")
