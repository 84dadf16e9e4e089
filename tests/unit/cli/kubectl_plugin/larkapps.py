"""LarkApps as the apiserver returns them, timed from one fixed now."""

from __future__ import annotations

import datetime as dt
from typing import Any

NOW = dt.datetime(2026, 1, 2, 3, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return (NOW + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(ctype: str, status: str, reason: str, message: str = "", t: float = -60) -> dict:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at(t),
    }


def larkapp(name: str, conditions: list[dict] | None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns1", "uid": "u-" + name},
        "spec": {"appId": f"cli_{name}"},
    }
    if conditions is not None:
        obj["status"] = {"conditions": conditions, **status}
    return obj
