"""HA tests: several real `lark-operator run --leader-elect` processes against one apiserver
and one emulator, through `env_factory` (namespace + emulator + operators + leak scan).
The Lease lives in the test's namespace, so tests never share one."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from kubernetes import client

from tests.helpers.kube import Kube
from tests.helpers.procs import Operator, http_json
from tests.integration.faults.conftest import control_plane

__all__ = ["control_plane"]  # the session apiserver, stopped and started by an outage test

LEASE = "lark-operator"


def elect_args(ns: str, *extra: str) -> list[str]:
    return ["--leader-elect", "--leader-elect-namespace", ns, "--leader-elect-name", LEASE, *extra]


def health(op: Operator) -> dict[str, Any]:
    try:
        return dict(http_json(op.health_url, timeout=2))
    except OSError:
        return {}


def acting(op: Operator, apps: int = 0) -> bool:
    """Leader, controller running, and (when apps > 0) holding that many LarkApps."""
    h = health(op)
    ctrl = h.get("controller") or {}
    return (
        h.get("role") == "leader"
        and ctrl.get("scheduler") == "running"
        and int(ctrl.get("larkapps") or 0) >= apps
    )


def lease(kube: Kube, ns: str) -> dict[str, Any]:
    obj = client.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE, ns)
    return dict(kube.api.sanitize_for_serialization(obj))


def signal_group(op: Operator, sig: int) -> float:
    """Send `sig` without waiting; the monotonic time it was sent."""
    assert op.proc is not None
    os.killpg(op.proc.pid, sig)
    return time.monotonic()


def exit_code(op: Operator, timeout: float) -> int | None:
    assert op.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if op.proc.poll() is not None:
            return op.proc.returncode
        time.sleep(0.05)
    return None


SIGTERM, SIGKILL = signal.SIGTERM, signal.SIGKILL
