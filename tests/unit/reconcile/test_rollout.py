"""target.rolloutRestart in isolation: when each workload is due, what a restart plans, and
what the workload itself says before anything is patched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lark_operator.kube import KubeError
from lark_operator.models import LarkAppSpec
from lark_operator.reconcile import rollout
from lark_operator.reconcile.rollout import Rollouts, slot
from lark_operator.reconcile.state import App
from lark_operator.tokens.secret import HeldTokens
from lark_operator.vocabulary.names import TOKEN_FINGERPRINT_ANNOTATION
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube

NS = "ns"
LANDED = 1_800_000_000.0


def _spec(*names: str, renew: str = "10m") -> LarkAppSpec:
    restart = [{"kind": "Deployment", "name": n} for n in names]
    return LarkAppSpec.parse(
        {
            "appId": "cli_r1",
            "appSecretRef": {"name": "s"},
            "refresh": {"renewBefore": renew},
            "target": {"rolloutRestart": restart},
        }
    )


def _app(token: str = "tok-1") -> App:
    app = App(NS, "app")
    app.token.held = HeldTokens({"tenant": token}, {"tenant": LANDED + 7200})
    app.token.refreshed_at = LANDED
    return app


def _deployment(kube: FakeKube, name: str, fingerprint: str | None = None) -> None:
    annotations = {TOKEN_FINGERPRINT_ANNOTATION: fingerprint} if fingerprint else {}
    kube.workloads[(NS, "Deployment", name)] = {
        "metadata": {"name": name, "resourceVersion": "7", "generation": 1},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
    }


def test_slots_spread_over_the_first_half_of_renew_before_the_same_everywhere() -> None:
    slots = [
        slot(NS, "app", ("Deployment", f"w{i}"), "sha256:abc", LANDED, 600) for i in range(100)
    ]
    assert all(LANDED <= s <= LANDED + 300 for s in slots)
    assert len({round(s) for s in slots}) > 80  # not all in the same seconds
    assert max(slots) - min(slots) > 250
    # deterministic: another replica computes the same moment; another token another one
    assert slots[0] == slot(NS, "app", ("Deployment", "w0"), "sha256:abc", LANDED, 600)
    assert slots[0] != slot(NS, "app", ("Deployment", "w0"), "sha256:def", LANDED, 600)


def test_plan_per_token_and_per_workload() -> None:
    clock = Clock(LANDED)
    r = Rollouts(FakeKube(), clock)
    app = App(NS, "app")
    r.plan(app, _spec("a", "b"))
    assert app.rollout.due == {}  # no token held: nothing to roll for
    app = _app()
    r.plan(app, _spec("a", "b"))
    assert set(app.rollout.due) == {("Deployment", "a"), ("Deployment", "b")}
    first = dict(app.rollout.due)
    del app.rollout.due[("Deployment", "a")]  # a was rolled
    r.plan(app, _spec("a", "b"))
    assert set(app.rollout.due) == {("Deployment", "b")}  # unchanged plan: nothing new
    r.plan(app, _spec("a", "b", "c"))  # c added for the same token: only c (and b) due
    assert set(app.rollout.due) == {("Deployment", "b"), ("Deployment", "c")}
    assert app.rollout.due[("Deployment", "b")] == first[("Deployment", "b")]
    app.token.held = HeldTokens({"tenant": "tok-2"}, {"tenant": LANDED + 9000})
    r.plan(app, _spec("a", "b", "c"))  # a new token: all of them again
    assert len(app.rollout.due) == 3
    assert r.next_due(app) == min(app.rollout.due.values())


async def test_run_reads_before_it_patches() -> None:
    clock = Clock(LANDED)
    kube = FakeKube()
    r = Rollouts(kube, clock)
    app = _app()
    fp = app.token.held.fingerprint()  # type: ignore[union-attr]
    _deployment(kube, "fresh")
    _deployment(kube, "done", fp)  # rolled already (before a restart, say)
    r.plan(app, _spec("fresh", "done", "gone"))
    clock.now = LANDED + 600
    await r.run(app)
    patched = [(name, p) for _, _, name, p in kube.workload_patches]
    assert [n for n, _ in patched] == ["fresh"]
    assert patched[0][1] == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"template": {"metadata": {"annotations": {TOKEN_FINGERPRINT_ANNOTATION: fp}}}},
    }
    assert set(app.rollout.due) == {("Deployment", "gone")}  # looked at again later
    assert app.rollout.due[("Deployment", "gone")] == clock.now + rollout.RETRY
    status, reason, message = rollout.condition(app, _spec("fresh", "done", "gone"))  # type: ignore[misc]
    assert (status, reason) == ("False", "WorkloadNotFound") and "gone" in message
    # The same token again (a restart, a failover): nothing is patched.
    r.plan(app, _spec("fresh", "done"))
    app.rollout.due = {w: LANDED for w in app.rollout.workloads}
    await r.run(app)
    assert len(kube.workload_patches) == 1
    assert rollout.condition(app, _spec("fresh", "done"))[:2] == ("True", "Enabled")  # type: ignore[index]


@pytest.mark.parametrize(("status", "retry"), [(409, 1.0), (403, rollout.RETRY)])
async def test_a_refused_patch_is_a_condition_not_an_exception(status: int, retry: float) -> None:
    clock = Clock(LANDED)
    kube = FakeKube()
    kube.workload_error = KubeError(status, "refused", "Forbidden")
    r = Rollouts(kube, clock)
    app = _app()
    _deployment(kube, "api")
    r.plan(app, _spec("api"))
    clock.now = LANDED + 600
    await r.run(app)
    assert app.rollout.due[("Deployment", "api")] == clock.now + retry
    failed: dict[Any, Any] = copy.deepcopy(app.rollout.failed)
    if status == 403:
        assert failed[("Deployment", "api")][0] == "RolloutFailed"
    else:
        assert not failed  # changed meanwhile: read again in a second, nothing to say
