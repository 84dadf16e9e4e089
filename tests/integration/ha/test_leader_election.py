"""Two or three `lark-operator run --leader-elect` processes, one apiserver, one emulator:
only the Lease holder acts; a lost Lease ends the holder at once; SIGTERM hands over in
seconds, kill -9 in about a lease duration; across both handovers no token lapses and no
refresh cycle calls the Open Platform twice."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from typing import Any

import pytest
from kubernetes import client

from tests.helpers.token_watch import TokenWatch
from tests.helpers.wait import always, eventually
from tests.integration.ha.conftest import (
    LEASE,
    SIGTERM,
    acting,
    elect_args,
    exit_code,
    health,
    lease,
    signal_group,
)

pytestmark = pytest.mark.integration

APP, SECRET = "cli_ha01", "s3cret-ha-value"
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0  # the defaults
# Bounds asserted on the takeover (signal or kill -> the new leader running the controller
# with the LarkApp loaded). Start-up of kopf + the controller takes ~2-5 s on 2 cores.
SIGTERM_TAKEOVER_MAX = 10.0  # release + one retry period (<= 2.4 s) + start-up
KILL_TAKEOVER_MAX = LEASE_DURATION + RETRY_PERIOD * 1.2 + 8.0


def _log_time(op: Any, text: str) -> float:
    entries = op.log_entries(text)
    assert entries, f"{text!r} not logged"
    return float(entries[0]["at"])


def test_only_the_lease_holder_acts(env_factory: Any) -> None:
    apps = {f"cli_ha1{i}": f"s3cret-ha-1{i}" for i in range(3)}
    env = env_factory(apps, start=False)
    a = env.start_operator(extra=elect_args(env.ns))
    eventually(lambda: acting(a), 30, what="first replica leading")
    b = env.start_operator(extra=elect_args(env.ns))
    assert health(b)["role"] == "standby"
    for i, (app_id, secret) in enumerate(apps.items()):
        env.app_secret(f"s{i}", secret)
        env.larkapp(f"app{i}", app_id, secret_name=f"s{i}")
    for i in range(len(apps)):
        eventually(lambda i=i: env.ready(f"app{i}"), 30, what=f"app{i} Ready")
    # Over a window, time for a standby that wrongly acts to show itself.
    always(
        lambda: (
            all(env.emu.token_calls(app_id) == 1 for app_id in apps)
            and health(b).get("role") == "standby"
        ),
        3,
        what="one upstream call per app, b standing by",
    )
    ha = health(a)
    me = ha["leaderElection"]["identity"]
    assert ha["controller"]["larkapps"] == len(apps) and ha["controller"]["scheduler"] == "running"
    assert 0 <= ha["eventLoopLagSeconds"] < 5
    spec = lease(env.kube, env.ns)["spec"]
    assert spec["holderIdentity"] == me
    assert spec["leaseDurationSeconds"] == 15
    hb = health(b)
    assert hb["status"] == "healthy" and hb["role"] == "standby"
    assert hb["leaderElection"]["holder"] == me
    # The metric that tells a dashboard (and LarkOperatorNoLeader) which replica acts.
    assert re.search(r"^lark_service_leader 1\.0$", a.metrics(), re.M)
    assert re.search(r"^lark_service_leader 0\.0$", b.metrics(), re.M)
    assert a.logs().count("token issued") == len(apps)
    b_logs = b.logs()
    for marker in ("token issued", "started (namespaces", "Activity", "refresh"):
        assert marker not in b_logs, f"standby logged {marker!r}"


def test_a_leader_that_loses_the_lease_exits_and_a_release_hands_over(env_factory: Any) -> None:
    env = env_factory({APP: SECRET}, start=False)
    timings = ["--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1"]
    a = env.start_operator(extra=elect_args(env.ns, *timings))
    eventually(lambda: acting(a), 30, what="a leading")
    b = env.start_operator(extra=elect_args(env.ns, *timings))
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    good = eventually(lambda: env.token("app"), 30, what="token")

    # Someone else holds the Lease now (as after a partition longer than a lease duration).
    api = client.CoordinationV1Api(env.kube.api)
    obj = api.read_namespaced_lease(LEASE, env.ns)
    obj.spec.holder_identity = "intruder"
    obj.spec.lease_duration_seconds = 3600
    obj.spec.renew_time = dt.datetime.now(dt.UTC)
    api.replace_namespaced_lease(LEASE, env.ns, obj)
    t0 = time.monotonic()
    code = exit_code(a, 10)
    gone_after = time.monotonic() - t0
    print(f"\nleader exited {gone_after:.2f}s after its Lease was taken (code {code})")
    assert code is not None and code != 0
    assert gone_after <= 1.0 * 1.2 + 2.0, gone_after  # its next renewal, not the deadline
    assert "leader Lease lost" in a.logs()
    always(
        lambda: health(b).get("role") == "standby",
        3,
        what="a live Lease of another holder keeps b out",
    )

    obj = api.read_namespaced_lease(LEASE, env.ns)
    obj.spec.holder_identity = ""
    obj.spec.lease_duration_seconds = 1
    api.replace_namespaced_lease(LEASE, env.ns, obj)
    t0 = time.monotonic()
    eventually(lambda: acting(b, 1), 20, interval=0.1, what="b leading after the release")
    took = time.monotonic() - t0
    print(f"standby took over {took:.2f}s after the Lease was released")
    assert took <= 1.2 + 8.0, took
    assert (
        lease(env.kube, env.ns)["spec"]["holderIdentity"] == health(b)["leaderElection"]["identity"]
    )
    always(
        lambda: env.token("app") == good and env.emu.token_calls(APP) == 1,
        3,
        what="the new leader resumes; it fetches nothing valid",
    )


def test_handover_on_sigterm_then_kill_no_lapse_no_double_refresh(env_factory: Any) -> None:
    """ttl 70 s, re-issue window 65 s, renewBefore 1m: a refresh every ~10 s. A reader checks
    the Secret every 0.1 s against the emulator's valid tokens while leadership passes
    a -> b (SIGTERM) -> c (kill -9)."""
    env = env_factory({APP: SECRET}, token_ttl=70, reissue_window=65, start=False)
    a = env.start_operator(extra=elect_args(env.ns))
    eventually(lambda: acting(a), 30, what="a leading")
    b = env.start_operator(extra=elect_args(env.ns))
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.token("app"), 30, what="first token")

    watch = TokenWatch(env, "app", APP).start()
    seen, bad = watch.seen, watch.bad
    try:
        # 1. Graceful: SIGTERM the leader; it stops acting, then releases the Lease.
        sent = signal_group(a, SIGTERM)
        eventually(lambda: acting(b, 1), 30, interval=0.1, what="b leading after SIGTERM")
        sigterm_takeover = time.monotonic() - sent
        assert exit_code(a, 20) == 0
        assert _log_time(a, "released leader Lease") <= _log_time(b, "became leader")

        c = env.start_operator(extra=elect_args(env.ns))
        n = len(seen)
        eventually(lambda: len(seen) > n, 30, interval=0.2, what="a refresh by b")
        eventually(lambda: env.status_matches_secret("app"), 10, what="b's status write")

        # 2. Crash: kill -9 the leader right after a refresh; c waits out the Lease.
        killed = time.monotonic()
        b.kill()
        eventually(lambda: acting(c, 1), 45, interval=0.2, what="c leading after kill -9")
        kill_takeover = time.monotonic() - killed
        n = len(seen)
        eventually(lambda: len(seen) > n, 30, interval=0.2, what="a refresh by c")
        eventually(lambda: env.status_matches_secret("app"), 10, what="c's status write")
    finally:
        watch.stop()
    print(
        f"\ntakeover after SIGTERM: {sigterm_takeover:.1f}s, after kill -9: {kill_takeover:.1f}s"
        f" (lease duration {LEASE_DURATION:.0f}s); tokens seen: {len(seen)}"
    )
    assert not bad, bad[:3]
    assert sigterm_takeover <= SIGTERM_TAKEOVER_MAX, sigterm_takeover
    assert LEASE_DURATION - RETRY_PERIOD <= kill_takeover <= KILL_TAKEOVER_MAX, kill_takeover
    # One upstream call per refresh cycle: every call brought a new token...
    assert env.emu.token_calls(APP) == len(set(seen)) == len(seen)
    # ...and the cycles are a refresh period (~10 s) apart, never two close together.
    issued = sorted(t["issued_at"] for t in env.emu.tokens(APP)["tokens"])
    gaps = [b - a for a, b in itertools.pairwise(issued)]
    assert gaps and min(gaps) >= 8.0, gaps
    assert lease(env.kube, env.ns)["spec"]["leaseTransitions"] >= 2


def test_apiserver_outage_leader_exits_standby_leads_when_it_returns(
    env_factory: Any, control_plane: Any
) -> None:
    """The apiserver (and etcd) down for 20 s: the leader cannot renew, so it exits (1)
    once its renew deadline (10 s) has passed, well before the standby may take over; the
    standby waits, and leads as soon as the apiserver is back (the Lease record has not
    changed for longer than a lease duration by then)."""
    env = env_factory({APP: SECRET}, start=False)
    a = env.start_operator(extra=elect_args(env.ns))
    eventually(lambda: acting(a), 30, what="a leading")
    b = env.start_operator(extra=elect_args(env.ns))
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    good = eventually(lambda: env.token("app"), 30, what="token")
    eventually(lambda: env.ready("app"), 10)

    down_at = time.monotonic()
    control_plane.stop()
    code = exit_code(a, 20)
    a_exit = time.monotonic() - down_at
    assert code == 1, code
    assert "leader Lease lost" in a.logs()
    assert b.alive() and health(b)["role"] == "standby"
    time.sleep(max(0.0, down_at + 20 - time.monotonic()))
    control_plane.start()
    up_at = time.monotonic()
    eventually(lambda: acting(b, 1), 30, interval=0.1, what="b leading after the outage")
    b_took = time.monotonic() - up_at
    print(
        f"\napiserver down {up_at - down_at:.0f}s: leader exited {a_exit:.1f}s in (renew"
        f" deadline 10s); standby leading {b_took:.1f}s after the apiserver was back"
    )
    assert a_exit <= 10 + RETRY_PERIOD * 1.2 + 2, a_exit
    assert b_took <= RETRY_PERIOD * 1.2 + 8, b_took
    eventually(lambda: env.ready("app"), 20, what="Ready under the new leader")
    assert env.token("app") == good
