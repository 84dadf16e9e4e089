"""The capacity plan against a simulated replica, second by second on a fake clock: it
measures how many refreshes per second it completes, brings a wave larger than that
forward (never before the re-issue window, earliest expiry first) so that every token is
renewed before it expires, and when even the window is not enough it names the LarkApps
whose tokens would lapse while every token is still valid."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from lark_operator.reconcile.capacity import SLIP, Due, Throughput, plan
from lark_operator.reconcile.planner import CONFIRM
from lark_operator.tokens import policy

TTL, RENEW, JITTER = 150.0, 60.0, 0.1  # the benchmark's scaled time
EARLIEST = policy.earliest_lead(TTL)  # 135 s before expiry


@dataclass
class App:
    expires: float
    due: float
    refreshes: list[float] = field(default_factory=list)  # start times
    lapsed: bool = False


@dataclass
class Replica:
    """`capacity` refreshes per second at most, earliest deadline first; a plan each second."""

    apps: dict[int, App]
    capacity: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    meter: Throughput = field(default_factory=Throughput)
    queue: list[tuple[float, int]] = field(default_factory=list)  # (expires, key)
    queued: set[int] = field(default_factory=set)
    brought_forward: int = 0
    first_shortfall: tuple[float, int] | None = None  # (time, LarkApps) when first seen
    shortfall_run: int = 0  # seconds in a row with a shortfall, the longest
    _run: int = 0

    def lead(self) -> float:
        return RENEW * (1 + JITTER * self.rng.random())

    def enqueue(self, key: int) -> None:
        if key not in self.queued:
            self.queued.add(key)
            heapq.heappush(self.queue, (self.apps[key].expires, key))

    def second(self, now: float) -> None:
        waiting_before = len(self.queue)
        for key, app in self.apps.items():
            if app.due <= now:
                self.enqueue(key)
        rate = self.meter.tick(1.0, saturated=waiting_before > 0 and len(self.queue) > 0)
        upcoming = [
            Due(k, a.due, a.expires - EARLIEST, a.expires)
            for k, a in self.apps.items()
            if k not in self.queued
        ]
        result = plan(
            upcoming, now=now, capacity=rate, busy=len(self.queue), measured=self.meter.measured
        )
        if result.shortfall and self.first_shortfall is None:
            self.first_shortfall = (now, result.shortfall)
        self._run = self._run + 1 if result.shortfall else 0
        self.shortfall_run = max(self.shortfall_run, self._run)
        for key in result.start_now:
            app = self.apps[key]
            assert app.expires - EARLIEST <= now < app.due  # inside the window, early
            self.brought_forward += 1
            self.enqueue(key)
        for _ in range(self.capacity):  # the replica's real capacity, unknown to the plan
            if not self.queue:
                break
            _, key = heapq.heappop(self.queue)
            self.queued.discard(key)
            app = self.apps[key]
            app.lapsed |= now > app.expires
            app.refreshes.append(now)
            app.expires = now + TTL  # the platform re-issues: a new token
            app.due = app.expires - self.lead()
            self.meter.done(refreshed=True)


def wave(n: int, capacity: int, seconds: int) -> Replica:
    """`n` LarkApps whose tokens were issued together at t=0, then `seconds` of life."""
    rng = random.Random(1)
    apps = {}
    for i in range(n):
        lead = RENEW * (1 + JITTER * rng.random())
        apps[i] = App(expires=TTL, due=TTL - lead)
    replica = Replica(apps, capacity)
    for now in range(1, seconds):
        replica.second(float(now))
    return replica


def test_a_wave_larger_than_capacity_starts_early_and_every_token_is_renewed_in_time() -> None:
    # 600 tokens expire together; the replica completes 6 refreshes per second: by
    # renewBefore alone (60-66 s before expiry) it would renew ~390 in time, the last
    # ~200 after expiry. The re-issue window (135 s) fits all of them.
    capacity, n = 6, 600
    assert n > capacity * RENEW
    replica = wave(n, capacity, seconds=int(3 * TTL))
    apps = replica.apps.values()
    assert not any(a.lapsed for a in apps)
    assert replica.brought_forward > n - capacity * RENEW * (1 + SLIP)
    first = min(a.refreshes[0] for a in apps)
    assert TTL - EARLIEST <= first < TTL - RENEW * (1 + JITTER)  # started early, not too early
    # The measurement found the real capacity while the wave ran.
    assert replica.meter.measured and abs(replica.meter.rate - capacity) < 1
    # One refresh per LarkApp per cycle: the wave was spread, not refreshed twice.
    cycles = 3 * TTL / (TTL - RENEW)
    assert max(len(a.refreshes) for a in apps) <= cycles + 1
    # ...and the next cycle stays spread: no LarkApp needed bringing forward again.
    second_cycle = [a.refreshes[1] - a.refreshes[0] for a in apps if len(a.refreshes) > 1]
    assert min(second_cycle) >= TTL - RENEW * (1 + JITTER) - 1
    # While the measurement settled, a near miss may be projected for a second or two:
    # never long enough to mark a LarkApp (CONFIRM ticks in a row).
    assert replica.shortfall_run < CONFIRM


def test_a_wave_the_window_cannot_hold_is_reported_before_any_token_lapses() -> None:
    # 1,000 tokens, 6 per second: even starting at the window's first second (135 s
    # before expiry), ~1,000 - 6 * 130 of them cannot be renewed in time.
    capacity, n = 6, 1000
    replica = wave(n, capacity, seconds=int(TTL) + 10)
    assert replica.first_shortfall is not None
    seen_at, count = replica.first_shortfall
    assert seen_at < TTL - RENEW * (1 + JITTER)  # before any refresh was even due
    assert seen_at < min(a.refreshes[0] for a in replica.apps.values() if a.lapsed) < TTL + 60
    expected = n - capacity * (EARLIEST - 5)
    assert 0.7 * expected <= count <= 1.3 * expected, (count, expected)
    assert sum(a.lapsed for a in replica.apps.values()) > 0  # the projection was right


def test_nothing_is_brought_forward_when_the_load_fits() -> None:
    # 300 tokens spread over a minute, 6 refreshes per second: nothing to move.
    rng = random.Random(3)
    apps = {}
    for i in range(300):
        exp = TTL + 60 * rng.random()
        apps[i] = App(expires=exp, due=exp - RENEW)
    replica = Replica(apps, 6)
    for now in range(1, int(3 * TTL)):
        replica.second(float(now))
    assert replica.brought_forward == 0
    assert not any(a.lapsed for a in apps.values())


def test_a_replica_simply_too_small_is_not_made_busier() -> None:
    # Steady load above capacity: bringing refreshes forward would only shorten cycles
    # and add load. The plan brings nothing forward once the replica is busy.
    items = [Due(i, 10.0 + i / 100, 0.0, 80.0 + i / 100) for i in range(2000)]
    result = plan(items, now=0.0, capacity=10.0, busy=10)
    assert result.start_now == []
    idle = plan(items, now=0.0, capacity=10.0, busy=0)
    assert 0 < len(idle.start_now) <= 2 * 10
    assert [*idle.start_now] == sorted(idle.start_now)  # earliest expiry first


def test_throughput_is_measured_only_when_saturated_with_refreshes() -> None:
    meter = Throughput(prior=20.0)
    for _ in range(5):  # idle seconds: a lower bound only
        meter.done(refreshed=True)
        meter.tick(1.0, saturated=False)
    assert meter.rate == 20.0 and not meter.measured
    for _ in range(200):  # a restart's pass over every LarkApp: not refreshes
        meter.done(refreshed=False)
    meter.tick(1.0, saturated=True)
    assert meter.rate == 20.0 and not meter.measured
    for _ in range(30):  # more than assumed, not saturated: the floor rises
        meter.done(refreshed=True)
    meter.tick(1.0, saturated=False)
    assert meter.rate == 30.0 and not meter.measured
    for _ in range(8):
        meter.done(refreshed=True)
    meter.tick(1.0, saturated=True)
    assert meter.measured and meter.rate == 8.0
    pinned = Throughput(pinned=50.0)
    pinned.tick(1.0, saturated=True)
    assert pinned.rate == 50.0
