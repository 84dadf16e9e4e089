"""AppAvailable (bot/v3/info) for a self-built app: False with the right reason when the
emulator's app is disabled, True again when it is enabled, Unknown without the bot
capability — in status, `kubectl lark status` and the metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration
APP, SECRET = "cli_avail01", "avail-secret-value"
KUBECTL_LARK = str(Path(sys.executable).parent / "kubectl-lark")


def available(env: Any) -> dict[str, Any] | None:
    return env.kube.condition(env.ns, "app", "AppAvailable")


def refresh(env: Any, value: str) -> None:
    env.kube.patch_larkapp(
        env.ns, "app", {"metadata": {"annotations": {"larkservice.io/refresh-requested-at": value}}}
    )


def activate_status_metric(env: Any) -> float | None:
    pattern = rf'^lark_service_app_activate_status\{{name="app",namespace="{env.ns}"\}} (\S+)$'
    m = re.search(pattern, env.op.metrics(), re.M)
    return float(m.group(1)) if m else None


def lark_status(env: Any) -> str:
    proc = subprocess.run(
        [KUBECTL_LARK, "status", "-n", env.ns],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": env.kube.kubeconfig},
    )
    return proc.stdout


def test_app_available_follows_the_apps_activate_status(env_factory: Any) -> None:
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30, what="Ready")
    eventually(lambda: (c := available(env)) and c["reason"] == "Available", 30)
    assert available(env)["status"] == "True"
    assert activate_status_metric(env) == 2

    env.emu.set_app(APP, activate_status=1)
    refresh(env, "disable")
    eventually(lambda: (c := available(env)) and c["reason"] == "AppDisabled", 30)
    cond = available(env)
    assert cond["status"] == "False" and "activate_status 1" in cond["message"]
    ready = env.kube.condition(env.ns, "app", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "AppDisabled"
    assert env.kube.condition(env.ns, "app", "Stalled")["status"] == "True"
    assert env.kube.condition(env.ns, "app", "TokenReady")["status"] == "True"
    assert activate_status_metric(env) == 1
    table = lark_status(env)
    assert re.search(r"\bapp\s+cli_avail01\s+False\s+\w+\s+AppDisabled\b", table), table

    env.emu.set_app(APP, activate_status=5)
    refresh(env, "licence")
    eventually(lambda: (c := available(env)) and c["reason"] == "LicenseExpired", 20)

    env.emu.set_app(APP, activate_status=2)
    refresh(env, "enable")
    eventually(lambda: (c := available(env)) and c["reason"] == "Available", 20)
    eventually(lambda: env.ready("app"), 20, what="Ready again")

    # Without the bot capability: Unknown, and the LarkApp stays Ready.
    env.emu.set_app(APP, bot=False)
    refresh(env, "nobot")
    eventually(lambda: (c := available(env)) and c["status"] == "Unknown", 20)
    assert available(env)["reason"] == "Unknown" and env.ready("app")
    eventually(lambda: activate_status_metric(env) is None, 10, what="no activate_status")
