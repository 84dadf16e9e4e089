"""Asking the operator to refresh a LarkApp's token, and waiting for its answer: the
handshake behind `kubectl lark refresh [--wait]` and `lark-operator refresh-token --larkapp`.

The request is the annotation larkservice.io/refresh-requested-at set to a new value; the
operator refreshes at once (one upstream call, bypassing its cache), writes the token
Secret, then copies the value into larkservice.io/refresh-handled-at and writes status.
A suspended LarkApp is never refreshed, so no request is made for one (and a wait ends as
soon as the LarkApp is suspended): waiting would only end in a misleading timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lark_operator.cli import cluster
from lark_operator.kube import KubeClient
from lark_operator.vocabulary.names import REFRESH_ANNOTATION, REFRESH_HANDLED_ANNOTATION

# After refresh-handled-at appears the operator writes status in its next API call; when
# the token came back unchanged there is nothing new to see, so wait this long at most.
STATUS_SETTLE_SECONDS = 3.0
POLL_SECONDS = 0.2


class Suspended(Exception):
    """The LarkApp is suspended (spec.suspend): the operator will not refresh it."""

    def __init__(self, namespace: str, name: str, while_waiting: bool = False) -> None:
        resume = (
            f"kubectl patch larkapp {name} -n {namespace} --type=merge "
            """-p '{"spec":{"suspend":false}}'"""
        )
        if while_waiting:
            what = "was suspended while waiting: the request is handled once it is resumed"
        else:
            what = (
                "is suspended (spec.suspend: true): the operator neither refreshes nor "
                "probes it, so no refresh was requested"
            )
        super().__init__(f"LarkApp {namespace}/{name} {what}. Resume it with: {resume}")


@dataclass(frozen=True)
class Request:
    namespace: str
    name: str
    value: str  # the annotation's value, RFC 3339 with microseconds
    at: dt.datetime
    before: dict[str, Any] = field(repr=False)  # the LarkApp when asked


@dataclass(frozen=True)
class Outcome:
    """What the operator recorded for a handled request."""

    larkapp: dict[str, Any] = field(repr=False)
    error: Mapping[str, Any] | None  # status.lastError written for this request
    fresh: bool  # status.token.refreshedAt is at or after the request: a new token


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339_micro(when: dt.datetime) -> str:
    """Microseconds, so that two requests within one second are still two new values."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def suspended(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("spec") or {}).get("suspend"))


async def request(kube: KubeClient, namespace: str, name: str) -> Request:
    """Set the refresh annotation to a new value (Suspended: nothing is set)."""
    before = await cluster.get_larkapp(kube, namespace, name)
    if suspended(before):
        raise Suspended(namespace, name)
    at = now()
    value = rfc3339_micro(at)
    patch = {"metadata": {"annotations": {REFRESH_ANNOTATION: value}}}
    await kube.patch_larkapp(namespace, name, patch)
    return Request(namespace, name, value, at, before)


async def wait(kube: KubeClient, req: Request, timeout: float) -> Outcome | None:
    """The outcome once the operator handled `req`; None when it did not within `timeout`
    (no operator watching the namespace). Suspended when the LarkApp is suspended meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        obj = await cluster.get_larkapp(kube, req.namespace, req.name)
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(REFRESH_HANDLED_ANNOTATION) == req.value:
            break
        if suspended(obj):
            raise Suspended(req.namespace, req.name, while_waiting=True)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_SECONDS)
    settled = await _wait_status(kube, req)
    return _outcome(settled, req.at)


def outcome_recorded(obj: Mapping[str, Any], since: dt.datetime) -> bool:
    """Status shows a refresh or an error at or after `since` (status has whole seconds)."""
    status = obj.get("status") or {}
    for text in (
        (status.get("token") or {}).get("refreshedAt"),
        (status.get("lastError") or {}).get("at"),
    ):
        if _at_or_after(text, since):
            return True
    return False


async def _wait_status(kube: KubeClient, req: Request) -> dict[str, Any]:
    """The LarkApp once the operator has written the status that follows the refresh."""
    had_error = bool((req.before.get("status") or {}).get("lastError"))
    deadline = time.monotonic() + STATUS_SETTLE_SECONDS
    while True:
        obj = await cluster.get_larkapp(kube, req.namespace, req.name)
        cleared = had_error and not (obj.get("status") or {}).get("lastError")
        if cleared or outcome_recorded(obj, req.at) or time.monotonic() >= deadline:
            return obj
        await asyncio.sleep(POLL_SECONDS)


def _outcome(obj: dict[str, Any], since: dt.datetime) -> Outcome:
    status = obj.get("status") or {}
    err = status.get("lastError") or {}
    # An error without a time, or one at or after the request, is this request's.
    mine = bool(err) and (not err.get("at") or _at_or_after(err.get("at"), since))
    refreshed = (status.get("token") or {}).get("refreshedAt")
    return Outcome(obj, err if mine else None, _at_or_after(refreshed, since))


def _at_or_after(text: Any, since: dt.datetime) -> bool:
    # Here, not at the top: the kubectl_plugin package imports this module.
    from lark_operator.cli.kubectl_plugin.render import parse_time

    when = parse_time(text)
    return when is not None and when >= since.replace(microsecond=0)
