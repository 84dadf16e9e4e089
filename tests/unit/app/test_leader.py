"""Leader election rules (leader.py) against an in-memory Lease store with resourceVersion
conflicts, on a fake clock: who may take the Lease when, that a holder gives up before any
standby may take over, and that a release hands over at once."""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from typing import Any

import pytest

from lark_operator.app.leader import (
    ElectionConfig,
    LeaderElector,
    Watchdog,
    default_identity,
    default_namespace,
    micro_time,
)
from lark_operator.kube import Conflict
from tests.helpers.clock import Clock


class FakeLeases:
    """The apiserver's side of a Lease: create fails if it exists, PUT fails on a stale
    resourceVersion; `down` makes every call fail like an unreachable apiserver."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = itertools.count(1)
        self.down = False
        self.writes = 0

    async def _check(self) -> None:
        await asyncio.sleep(0)  # a round trip: lets concurrent candidates interleave
        if self.down:
            raise ConnectionRefusedError("apiserver down")

    async def get_lease(self, ns: str, name: str, *, timeout: float = 30) -> dict[str, Any] | None:
        await self._check()
        lease = self.leases.get((ns, name))
        return copy.deepcopy(lease) if lease else None

    async def create_lease(
        self, ns: str, body: dict[str, Any], *, timeout: float = 30
    ) -> dict[str, Any]:
        await self._check()
        key = (ns, body["metadata"]["name"])
        if key in self.leases:
            raise Conflict(409, "exists", "AlreadyExists")
        return self._store(key, body)

    async def replace_lease(
        self, ns: str, name: str, body: dict[str, Any], *, timeout: float = 30
    ) -> dict[str, Any]:
        await self._check()
        current = self.leases.get((ns, name))
        if current is None or current["metadata"]["resourceVersion"] != (
            body["metadata"].get("resourceVersion")
        ):
            raise Conflict(409, "the object has been modified", "Conflict")
        return self._store((ns, name), body)

    def _store(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        self.leases[key] = body
        self.writes += 1
        return copy.deepcopy(body)

    def spec(self, name: str = "lark-operator") -> dict[str, Any]:
        return dict(self.leases[("ns", name)]["spec"])


def make(store: FakeLeases, clock: Clock, identity: str, **kw: Any) -> LeaderElector:
    cfg = ElectionConfig("ns", "lark-operator", identity, **kw)
    return LeaderElector(store, cfg, clock=clock, wall=lambda: 1.7e9 + clock.now)


async def test_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    assert await a.try_acquire_or_renew()
    assert a.is_leader
    spec = store.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]

    assert not await b.try_acquire_or_renew()
    assert not b.is_leader and b.holder == "a"
    clock.now += 14.9  # not yet a lease duration since b first saw this record
    assert not await b.try_acquire_or_renew()


async def test_standby_takes_an_unrenewed_lease_only_a_full_duration_after_seeing_it() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    await a.try_acquire_or_renew()
    clock.now += 100  # a died long ago, but b has only now started watching
    assert not await b.try_acquire_or_renew()  # b times the record on its own clock
    clock.now += 15
    assert await b.try_acquire_or_renew()
    spec = store.spec()
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


async def test_renewals_keep_a_standby_out_for_ever() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    await a.try_acquire_or_renew()
    acquired = store.spec()["acquireTime"]
    for _ in range(20):
        clock.now += 2
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    spec = store.spec()
    assert spec["acquireTime"] == acquired and spec["renewTime"] != acquired
    assert spec["leaseTransitions"] == 0


async def test_holder_gives_up_before_any_standby_may_take_over() -> None:
    """The safety margin: a leader that cannot renew has lost after renew_deadline (10 s),
    measured from the *start* of its last good renewal; a standby that saw that renewal
    even at once may take over only lease_duration (15 s) later."""
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    await a.try_acquire_or_renew()
    renewed = clock.now
    assert not await b.try_acquire_or_renew()  # b sees the record at the same instant
    gave_up = taken = None
    # a is cut off from the apiserver (it renews no more); b keeps trying every 0.1 s.
    while taken is None and clock.now < renewed + 30:
        clock.now += 0.1
        if gave_up is None and a.lost():
            gave_up = clock.now
        if await b.try_acquire_or_renew():
            taken = clock.now
    assert gave_up is not None and taken is not None
    assert gave_up - renewed == pytest.approx(10.1, abs=0.11)
    assert taken - renewed == pytest.approx(15.0, abs=0.11)
    assert taken - gave_up >= 4.8


async def test_conflicting_writes_elect_exactly_one() -> None:
    store, clock = FakeLeases(), Clock()
    cands = [make(store, clock, f"c{i}") for i in range(5)]
    results = await asyncio.gather(*(c.try_acquire_or_renew() for c in cands))
    assert sum(results) == 1
    winner = next(c for c, ok in zip(cands, results, strict=True) if ok)
    assert store.spec()["holderIdentity"] == winner.identity
    # The winner dies; its lease expires for all the others at once: still exactly one.
    others = [c for c in cands if c is not winner]
    for c in others:
        assert not await c.try_acquire_or_renew()  # first sight of the record
    clock.now += 16
    results = await asyncio.gather(*(c.try_acquire_or_renew() for c in others))
    assert sum(results) == 1


async def test_release_lets_the_standby_take_over_at_its_next_attempt() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    spec = store.spec()
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert not a.is_leader
    assert await b.try_acquire_or_renew()  # no waiting: nobody holds it
    assert store.spec()["leaseTransitions"] == 1
    assert not await a.release()  # not ours any more: leaves b's Lease alone
    assert store.spec()["holderIdentity"] == "b"


async def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    store, clock = FakeLeases(), Clock()
    a = make(store, clock, "a", retry_period=1.0, renew_deadline=5.0, lease_duration=8.0)
    await a.try_acquire_or_renew()
    lease = store.leases[("ns", "lark-operator")]
    lease["spec"]["holderIdentity"] = "intruder"
    lease["metadata"]["resourceVersion"] = "999"
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)
        clock.now += s

    a.sleep = sleep
    await asyncio.wait_for(a.hold(), 1)
    assert not a.is_leader
    assert sleeps == [1.0]  # gave up on the first renewal, not after the deadline


async def test_hold_returns_after_the_renew_deadline_when_the_apiserver_is_gone() -> None:
    store, clock = FakeLeases(), Clock()
    a = make(store, clock, "a")
    await a.try_acquire_or_renew()
    start = clock.now

    async def sleep(s: float) -> None:
        clock.now += s

    a.sleep = sleep
    store.down = True
    await asyncio.wait_for(a.hold(), 1)
    assert not a.is_leader
    assert 10 < clock.now - start <= 12  # the first retry past the deadline


async def test_acquire_waits_retry_periods_until_the_lease_frees() -> None:
    store, clock = FakeLeases(), Clock()
    a, b = make(store, clock, "a"), make(store, clock, "b")
    await a.try_acquire_or_renew()
    waited: list[float] = []

    async def sleep(s: float) -> None:
        waited.append(s)
        clock.now += s
        if len(waited) == 3:
            await a.release()

    b.sleep, b.rng = sleep, lambda: 0.5
    await asyncio.wait_for(b.acquire(), 1)
    assert b.is_leader and waited == [2.2, 2.2, 2.2]


def test_watchdog_calls_on_lost_from_its_thread() -> None:
    store, clock = FakeLeases(), Clock()
    a = make(store, clock, "a")
    asyncio.run(a.try_acquire_or_renew())
    fired = threading.Event()
    dog = Watchdog(a, fired.set, interval=0.01)
    dog.start()
    assert not fired.wait(0.1)
    clock.now += 10.5
    assert fired.wait(2)
    dog.join(2)


@pytest.mark.parametrize(
    "kw",
    [
        {"lease_duration": 10.0, "renew_deadline": 10.0},
        {"renew_deadline": 2.0, "retry_period": 2.0},
        {"retry_period": 0.0},
    ],
)
def test_config_rejects_unsafe_timings(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ElectionConfig("ns", "n", "me", **kw).validate()


def test_identity_namespace_and_time_format(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOSTNAME", "lark-operator-7d9f")
    a, b = default_identity(), default_identity()
    assert a.startswith("lark-operator-7d9f_") and a != b
    ns_file = tmp_path / "namespace"
    ns_file.write_text("lark-system\n")
    assert default_namespace(str(ns_file)) == "lark-system"
    assert default_namespace(str(tmp_path / "missing")) == "default"
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"


def test_run_flags_reach_the_settings() -> None:
    from lark_operator.cli.main import build_parser
    from lark_operator.cli.run import settings_from

    argv = "run --leader-elect --leader-elect-namespace lark-system --leader-elect-name lo"
    argv += " --lease-duration 20s --renew-deadline 12 --retry-period 1500ms"
    args = build_parser().parse_args(argv.split())
    s = settings_from(args)
    assert s.leader_elect and s.leader_elect_namespace == "lark-system"
    assert s.leader_elect_name == "lo"
    assert (s.lease_duration, s.renew_deadline, s.retry_period) == (20.0, 12.0, 1.5)
    plain = settings_from(build_parser().parse_args(["run"]))
    assert not plain.leader_elect  # standalone unless asked (or LARK_OPERATOR_LEADER_ELECT)
    assert (plain.lease_duration, plain.renew_deadline, plain.retry_period) == (15, 10, 2)


def test_run_refuses_unsafe_timings(capsys: Any) -> None:
    from lark_operator.cli.main import main

    assert main(["run", "--leader-elect", "--lease-duration", "5", "--renew-deadline", "8"]) == 2
    assert "--lease-duration must be more than --renew-deadline" in capsys.readouterr().err


def test_kopf_peering_is_not_offered() -> None:
    """kopf peering pauses only kopf, not the controller's scheduler: HA is the Lease."""
    import pytest

    from lark_operator.cli.main import main

    with pytest.raises(SystemExit):
        main(["run", "--peering", "x"])
