"""The operator as users run it (`make e2e`, docs/e2e.md): the image built from the
Dockerfile, the chart installed with it on a real node (two replicas electing a leader),
the emulator in a pod beside it. What only a pod shows: probes, `kubectl logs`, the
securityContext as the kernel applies it, a leader pod deleted. The tests share one node
and run in file order; the last tears the node down and compares the host with before."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    APP_ID,
    APP_NS,
    LARKAPP,
    OPERATOR_NS,
    TOKEN_SECRET,
    Cluster,
    Release,
    assert_host_restored,
)
from tests.e2e.host import HostState
from tests.e2e.node import NODE_NAME, SERVICE_IP, Images, pod_ready
from tests.helpers.procs import http_json
from tests.helpers.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LOG_KEYS = ("timestamp", "level", "logger", "message")


def _name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def _health(pod_ip: str) -> dict[str, Any]:
    try:
        return dict(http_json(f"http://{pod_ip}:9091/health", timeout=2))
    except OSError:
        return {}


def _acting(pod_ip: str) -> dict[str, Any] | None:
    """/health of a leader running the controller, else None."""
    health = _health(pod_ip)
    running = (health.get("controller") or {}).get("scheduler") == "running"
    return health if health.get("role") == "leader" and running else None


def _expires_at(secret: dict[str, str]) -> dt.datetime:
    return dt.datetime.fromisoformat(secret["expires_at"].replace("Z", "+00:00"))


def test_a_larkapp_gets_ready_with_a_token_from_the_operator_pod(
    release: Release, images: Images
) -> None:
    kube = release.kube
    ready = kube.condition(APP_NS, LARKAPP, "Ready")
    assert ready and ready["status"] == "True", ready
    secret = kube.secret(APP_NS, TOKEN_SECRET)
    assert secret, "no token Secret"
    assert secret["app_id"] == APP_ID
    assert secret["tenant_access_token"] in release.issued_tokens()
    assert _expires_at(secret) > dt.datetime.now(dt.UTC)
    pods = release.pods()
    assert len(pods) == 2, [_name(p) for p in pods]
    for pod in pods:
        status = pod["status"]["containerStatuses"][0]
        assert status["image"] == "localhost/lark-operator:e2e"
        assert status["imageID"].endswith(images.operator_id), (status, images.operator_id)


def _probe_results(release: Release) -> dict[tuple[str, str, str], float]:
    """The kubelet's prober_probe_total for the operator pods: (pod, probe, result) -> count,
    read through the apiserver's node proxy."""
    text = release.kube.kubectl("get", "--raw", f"/api/v1/nodes/{NODE_NAME}/proxy/metrics/probes")
    counts = {}
    for line in text.stdout.splitlines():
        m = re.match(r"prober_probe_total\{(.*)\} (\S+)$", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("namespace") == OPERATOR_NS:
            key = (labels["pod"], labels["probe_type"], labels["result"])
            counts[key] = float(m.group(2))
    return counts


def test_readiness_and_liveness_probes_pass(release: Release) -> None:
    """From Ready on (helm --wait), every probe passes. Before, readiness may fail: that is
    what it is for while the operator starts (seconds, on a busy machine)."""
    pods = [_name(p) for p in release.pods()]
    before = _probe_results(release)

    def probed_again() -> dict[tuple[str, str, str], float] | None:
        now = _probe_results(release)
        wanted = [(p, t, "successful") for p in pods for t in ("Liveness", "Readiness")]
        return now if all(now.get(k, 0) > before.get(k, 0) for k in wanted) else None

    # liveness: every 20 s
    after = eventually(probed_again, 60, 2, "one more liveness and readiness success per pod")
    failures = {
        key: count - before.get(key, 0)
        for key, count in after.items()
        if key[2] != "successful" and count > before.get(key, 0)
    }
    assert not failures, failures
    for pod in release.pods():
        assert pod_ready(release.kube, OPERATOR_NS, _name(pod))
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, _name(pod)


def test_kubectl_logs_are_json_lines_without_secrets(release: Release) -> None:
    secrets = {release.app_secret, *release.issued_tokens()}
    roles = set()
    for pod in release.pods():
        text = release.logs(_name(pod))
        lines = text.splitlines()
        assert lines, f"{_name(pod)} logged nothing"
        for line in lines:
            record = json.loads(line)
            assert isinstance(record, dict), line
            missing = [k for k in LOG_KEYS if k not in record]
            assert not missing, f"{missing} missing in {line}"
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{_name(pod)} logged a secret"
        roles.add("leader" if "became leader" in text else "standby")
        if "became leader" not in text:
            assert "waiting for leader Lease" in text
    assert roles == {"leader", "standby"}


# Run inside the container with `kubectl exec`: what the kernel applies to the operator
# (PID 1) and to a process started beside it, and whether the root filesystem takes a write.
INSPECT = r"""
import errno, json, os
def status(pid):
    lines = open(f"/proc/{pid}/status").read().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)
def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as e:
        return errno.errorcode[e.errno]
    os.unlink(path)
    return "written"
print(json.dumps({
    "cmdline": open("/proc/1/cmdline").read().split("\0"),
    "operator": status(1), "exec": status("self"),
    "root": write("/e2e-probe"), "tmp": write("/tmp/e2e-probe"),
}))
"""


def test_the_operator_runs_as_65532_without_capabilities_on_a_read_only_root(
    release: Release,
) -> None:
    pod = _name(release.pods()[0])
    out = release.kube.kubectl("exec", "-n", OPERATOR_NS, pod, "--", "python", "-c", INSPECT)
    seen = json.loads(out.stdout)
    assert seen["cmdline"][1:3] == ["/opt/venv/bin/lark-operator", "run"], seen["cmdline"]
    for who in ("operator", "exec"):
        status = seen[who]
        assert status["Uid"].split() == ["65532"] * 4, (who, status["Uid"])
        assert status["Gid"].split() == ["65532"] * 4, (who, status["Gid"])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[cap], 16) == 0, (who, cap, status[cap])
        assert status["NoNewPrivs"] == "1", who
        assert status["Seccomp"] == "2", who  # a filter: RuntimeDefault
    assert seen["root"] == "EROFS"
    assert seen["tmp"] == "written"


REACH = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as e:
    print(type(e).__name__)
"""


def test_traffic_stays_on_the_bridge(release: Release) -> None:
    """A pod reaches the apiserver (through the relay on the bridge) and the emulator (on the
    bridge), and nothing past the host: no route or NAT leads anywhere else."""
    gateway = subprocess.run(
        ["ip", "-4", "route", "show", "default"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert gateway[:2] == ["default", "via"], gateway
    pod = _name(release.pods()[0])
    emulator = release.emulator_url.removeprefix("http://").split(":")
    for host, port, reachable in (
        (SERVICE_IP, "443", True),
        (emulator[0], emulator[1], True),
        (gateway[2], "443", False),  # the host's own default gateway
    ):
        out = release.kube.kubectl(
            "exec", "-n", OPERATOR_NS, pod, "--", "python", "-c", REACH, host, port
        ).stdout.strip()
        assert (out == "connected") == reachable, (host, port, out)


class Sampler(threading.Thread):
    """Every 0.2 s, what a workload and `kubectl get` see: the token Secret (its expiry must
    be ahead), the LarkApp's Ready condition and the Lease's holder."""

    def __init__(self, release: Release):
        super().__init__(daemon=True)
        self.release = release
        self.lapses: list[str] = []
        self.tokens: list[tuple[float, str]] = []  # (when first seen, token)
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        kube = self.release.kube
        while not self._done.wait(0.2):
            now = dt.datetime.now(dt.UTC)
            secret = kube.secret(APP_NS, TOKEN_SECRET)
            ready = kube.condition(APP_NS, LARKAPP, "Ready") or {}
            self.samples += 1
            if not secret or _expires_at(secret) <= now:
                self.lapses.append(f"{now:%T.%f}: token Secret {secret and secret['expires_at']}")
            if ready.get("status") != "True":
                self.lapses.append(
                    f"{now:%T.%f}: Ready {ready.get('status')} {ready.get('reason')}"
                )
            if secret and (not self.tokens or self.tokens[-1][1] != secret["tenant_access_token"]):
                self.tokens.append((time.monotonic(), secret["tenant_access_token"]))

    def stop(self) -> None:
        self._done.set()
        self.join(10)


def _holder_pod(release: Release, exclude: str) -> str | None:
    """The pod holding the Lease (identity: <pod name>_<random>), unless it is `exclude`."""
    pod = (release.lease().spec.holder_identity or "").rsplit("_", 1)[0]
    return pod if pod and pod != exclude else None


def _pod_ip(release: Release, name: str) -> str | None:
    return next((p["status"].get("podIP") for p in release.pods() if _name(p) == name), None)


@contextlib.contextmanager
def explained(explain: Callable[[], str]) -> Iterator[None]:
    """An AssertionError raised inside gets explain() added to its message."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{e}\n{explain()}") from None


def _handover_state(release: Release, cluster: Cluster, leader: str, log_path: Path) -> str:
    """What explains a handover that went wrong: the Lease, the pods, the old leader's last
    words and what the kubelet did with its pod."""
    pods = [
        f"{_name(p)} deleting={p['metadata'].get('deletionTimestamp')}"
        f" {p['status'].get('containerStatuses', [{}])[0].get('state')}"
        for p in release.pods(terminating=True)
    ]
    kubelet = (cluster.node.log_dir / "kubelet.log").read_text(errors="replace").splitlines()
    old_log = log_path.read_text(errors="replace").splitlines()
    return "\n".join(
        [
            f"Lease: {release.lease().spec}",
            *pods,
            "the old leader's log:",
            *old_log[-10:],
            "the kubelet on it:",
            *[line for line in kubelet if leader in line][-15:],
        ]
    )


def test_deleting_the_leader_pod_hands_over_without_a_lapse(
    release: Release, cluster: Cluster, tmp_path: Path
) -> None:
    kube = release.kube
    lease = release.lease().spec
    leader = lease.holder_identity.rsplit("_", 1)[0]  # identity: <pod name>_<random>
    pods = {_name(p): p for p in release.pods()}
    assert leader in pods, (lease.holder_identity, list(pods))
    (standby,) = set(pods) - {leader}
    assert _health(pods[standby]["status"]["podIP"]).get("role") == "standby"

    sampler = Sampler(release)
    sampler.start()
    log_path = tmp_path / "old-leader.log"
    with open(log_path, "wb") as log:  # the old leader's log, up to its last line
        follow = subprocess.Popen(
            [
                kube.kubectl_bin,
                "--kubeconfig",
                kube.kubeconfig,
                "logs",
                "-f",
                "-n",
                OPERATOR_NS,
                leader,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with explained(lambda: _handover_state(release, cluster, leader, log_path)):
            eventually(lambda: sampler.tokens, 10, 0.2, "the sampler's first read")
            deleted = time.monotonic()
            kube.kubectl("delete", "pod", "-n", OPERATOR_NS, leader, "--wait=false")
            # Released on SIGTERM, the Lease goes to whichever candidate asks first: the
            # standby (it asks every retry period), or the Deployment's replacement pod when
            # it starts within that period (as with client-go). Either is a handover.
            holder = eventually(
                lambda: _holder_pod(release, exclude=leader),
                lease.lease_duration_seconds + 10,
                0.1,
                "another pod holding the Lease",
            )
            took = time.monotonic() - deleted
            holder_ip = eventually(
                lambda: _pod_ip(release, holder), 30, 0.2, "the new leader's pod IP"
            )
            health = eventually(
                lambda: _acting(holder_ip), 30, 0.2, "the new holder acting as leader"
            )
            # A refresh by the new leader: a token first seen after the handover.
            eventually(
                lambda: sampler.tokens[-1][0] > deleted + took,
                40,
                0.5,
                "a refresh by the new leader",
            )
            # The Deployment replaces the deleted pod; the pod not holding the Lease waits
            # as a standby.
            others = eventually(
                lambda: [
                    p
                    for p in release.pods()
                    if _name(p) not in (leader, holder) and pod_ready(kube, OPERATOR_NS, _name(p))
                ],
                90,
                1,
                "a Ready pod beside the new leader",
            )
            assert _health(others[0]["status"]["podIP"]).get("role") == "standby"
            assert follow.wait(60) == 0
    finally:
        sampler.stop()
        if follow.poll() is None:
            follow.kill()
    old_log = log_path.read_text(errors="replace")
    print(
        f"\nLease taken over {took:.1f}s after the leader pod's deletion (lease duration"
        f" {lease.lease_duration_seconds}s); {sampler.samples} samples, tokens seen:"
        f" {len(sampler.tokens)}"
    )
    assert not sampler.lapses, sampler.lapses[:5]
    # Released on SIGTERM: well before the Lease could have expired (a crashed leader's
    # successor waits out leaseDuration after the last renewal).
    assert "released leader Lease" in old_log, old_log[-2000:]
    assert took < lease.lease_duration_seconds - 5, took
    assert release.lease().spec.lease_transitions >= lease.lease_transitions + 1
    assert health["leaderElection"]["holder"].startswith(f"{holder}_")


def test_teardown_puts_the_host_back(cluster: Cluster, host_before: HostState) -> None:
    # The kubelet did set its kernel tunables (kernel.panic=10): in the node's private copy.
    assert cluster.node.read_inside("/proc/sys/kernel/panic") == "10"
    assert Path("/proc/sys/kernel/panic").read_text().strip() == host_before.sysctls["kernel/panic"]
    cluster.down()
    assert_host_restored(host_before)
