"""Hostile LarkApps run on the shared harness (tests/conftest.py env_factory): a real
apiserver, the emulator and the operator as processes, and a scan for leaked secrets at
teardown (every hostile value is added to env.secrets)."""

from __future__ import annotations

from typing import Any

from tests.helpers.env import Env


def last_error(env: Env, name: str) -> dict[str, Any]:
    return dict((env.kube.larkapp(env.ns, name).get("status") or {}).get("lastError") or {})


def reason(env: Env, name: str, ctype: str) -> str | None:
    cond = env.kube.condition(env.ns, name, ctype)
    return cond.get("reason") if cond else None
