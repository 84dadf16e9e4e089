"""The capacity plan wired to the reconciler (reconcile/planner.py), on a fake clock with a
fake apiserver: a refresh brought forward really renews early (and the next one is planned
from the new token), and a LarkApp whose token the plan projects to lapse says so in its
status and an Event, before it lapses, until its token is renewed."""

from __future__ import annotations

from typing import Any

from lark_operator import metrics
from lark_operator.models import LarkAppSpec
from lark_operator.reconcile.planner import BUDGET, IDLE_TICK, TICK
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.settings import Settings
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube, ScriptedClient

NS = "plan"
TTL = 150.0  # the benchmark's scaled time: renewBefore 1m, re-issue window 135 s


def body(i: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": f"a{i:03d}", "uid": f"u-{i}", "generation": 1},
        "spec": {
            "appId": f"cli_plan{i:03d}",
            "appSecretRef": {"name": "lark"},
            "refresh": {"renewBefore": "1m", "jitter": 0.1},
        },
    }


async def wave(n: int, capacity: float) -> tuple[Reconciler, FakeKube, ScriptedClient, Clock]:
    """`n` LarkApps whose first tokens were issued in the same second."""
    clock, kube = Clock(), FakeKube()
    client = ScriptedClient(clock)
    client.ttl = TTL
    kube.put_app_secret(NS, "lark", {"appSecret": "the-secret"})
    settings = Settings(refresh_capacity=capacity)
    ctl = Reconciler(kube, client, settings, clock=clock, rng=lambda: 0.5)
    for i in range(n):
        ctl.observe(body(i))
        await ctl.reconcile(ctl.registry.apps[(NS, f"a{i:03d}")])
    return ctl, kube, client, clock


def value(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


async def test_refreshes_brought_forward_renew_early_and_plan_from_the_new_token() -> None:
    ctl, _kube, client, clock = await wave(120, capacity=1.0)
    expiry = clock.now + TTL
    natural = {k: a.token.next_refresh_at or 0.0 for k, a in ctl.registry.apps.items()}
    before, calls = value("lark_service_refreshes_brought_forward_total"), client.calls
    early: set[tuple[str, str]] = set()
    clock.now = expiry - 134  # the re-issue window has opened
    for _ in range(40):
        clock.now += 1
        ctl.planner.tick()
        for key, app in ctl.registry.apps.items():
            if app.token.next_refresh_at is not None and app.token.next_refresh_at <= clock.now:
                early.add(key)
                await ctl.reconcile(app)
    # 120 refreshes due within seconds of each other at 1 per second: some must go early.
    assert early and value("lark_service_refreshes_brought_forward_total") - before == len(early)
    assert client.calls - calls == len(early)  # one refresh each
    for key in early:
        app = ctl.registry.apps[key]
        assert app.token.held is not None and app.token.held.earliest_expiry > expiry
        assert app.token.refreshed_at is not None and app.token.refreshed_at < natural[key]
        # the next refresh comes from the new token's expiry, renewBefore ahead of it
        assert app.token.next_refresh_at == app.token.held.earliest_expiry - 63


async def test_a_store_app_is_not_brought_forward() -> None:
    """A store app renews each tenant in its own window (reconcile/storeapp.py): a run
    brought forward would find nothing due and only cost a slot, tick after tick."""
    ctl, _kube, _client, clock = await wave(120, capacity=1.0)
    shop = ctl.registry.apps[(NS, "a000")]  # first in expiry order: the first to move
    shop.spec = LarkAppSpec.parse(
        {
            **body(0)["spec"],
            "appType": "Store",
            "store": {
                "encryptKeyRef": {"name": "k"},
                "verificationTokenRef": {"name": "k"},
                "tenants": {"keys": ["t1"]},
            },
        }
    )
    planned = shop.token.next_refresh_at
    clock.now += TTL - 134  # the re-issue window has opened
    moved: list[tuple[str, str]] = []
    for _ in range(5):
        clock.now += 1
        moved += ctl.planner.tick().start_now
    assert moved and (NS, "a000") not in moved  # the others do move
    assert shop.token.next_refresh_at == planned


async def test_a_token_projected_to_lapse_says_so_before_it_does() -> None:
    ctl, kube, _client, clock = await wave(120, capacity=0.2)  # one per 5 s: far too few
    expiry = clock.now + TTL
    clock.now = expiry - 130
    for _ in range(3):
        clock.now += 1
        ctl.planner.tick()
    assert value("lark_service_refresh_shortfall") > 60
    flagged = [a for a in ctl.registry.apps.values() if a.token.at_risk is not None]
    assert flagged  # a few at a time: each costs a status write
    app = flagged[0]
    await ctl.reconcile(app)
    assert clock.now < expiry
    status = kube.status_patches[-1][2]
    conds = {c["type"]: c for c in status["conditions"]}
    assert (conds["TokenReady"]["status"], conds["TokenReady"]["reason"]) == (
        "True",
        "RefreshCapacityExceeded",
    )
    assert conds["Ready"]["reason"] == "RefreshCapacityExceeded" and status["phase"] == "Degraded"
    assert any(r == "RefreshCapacityExceeded" for _, r, _ in kube.events)
    # Renewed after all (by hand, or the load dropped): back to Refreshed.
    clock.now = app.token.next_refresh_at or clock.now
    app.token.next_refresh_at = clock.now
    await ctl.reconcile(app)
    conds = {c["type"]: c for c in kube.status_patches[-1][2]["conditions"]}
    assert conds["TokenReady"]["reason"] == "Refreshed"
    assert app.token.at_risk is None


async def test_retries_count_in_the_shortfall_but_are_not_brought_forward() -> None:
    """An apiserver too busy fails writes, and the LarkApps it fails retry on their own
    schedule: still in the projected shortfall (or the alert would go quiet exactly when
    it matters), never started before their retry, and their status keeps their failure."""
    ctl, _kube, _client, clock = await wave(120, capacity=0.2)
    expiry = clock.now + TTL
    clock.now = expiry - 130
    retry_at = clock.now + 20
    for app in ctl.registry.apps.values():
        app.token.failures, app.token.next_refresh_at = 1, retry_at
    moved: list[tuple[str, str]] = []
    for _ in range(3):
        clock.now += 1
        moved += ctl.planner.tick().start_now
    assert value("lark_service_refresh_shortfall") > 60
    assert not moved
    assert all(a.token.next_refresh_at == retry_at for a in ctl.registry.apps.values())
    assert not [a for a in ctl.registry.apps.values() if a.token.at_risk is not None]


async def test_a_quiet_replica_plans_less_often_and_a_wave_at_once() -> None:
    """Nothing to bring forward, nothing at risk, nothing waiting: the next plan comes
    IDLE_TICK later. A plan with work, or a failed one, keeps the one-second tick; a plan
    that cost more than its CPU budget spaces the next one out."""
    ctl, _kube, _client, clock = await wave(120, capacity=1.0)
    planner = ctl.planner
    quiet = planner.tick()  # just issued: every refresh far off
    assert not quiet.start_now and planner.next_interval(quiet, 0.001) == IDLE_TICK
    clock.now += TTL - 134  # the re-issue window has opened: the wave is brought forward
    busy = planner.tick()
    assert busy.start_now and planner.next_interval(busy, 0.001) == TICK
    assert planner.next_interval(None, 0.001) == TICK
    assert planner.next_interval(quiet, 1.0) == 1.0 / BUDGET
