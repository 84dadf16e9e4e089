"""Background loops of the running operator: the metadata-only Secret watch (what tells the
reconciler that a Secret it uses changed), the metadata-only namespace watch (their labels,
for ClusterLarkApps that allow namespaces by selector) and the event-loop lag meter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from lark_operator.kube import KubeClient

log = logging.getLogger("lark_operator.watch")

SecretChanged = Callable[[str, str, str, str | None], None]


async def watch_secrets(
    kube: KubeClient,
    namespace: str | None,
    on_change: SecretChanged,
    state: dict[str, str],
    key: str = "secrets",
    *,
    label_selector: str | None = None,
) -> None:
    """Forever: every Secret event (metadata only) to `on_change(event, ns, name, rv)`;
    `state[key]` says how the watch is doing (for /health)."""
    while True:
        try:
            async for event, obj in kube.watch_secret_metadata(namespace, label_selector):
                if event == "SYNCED":
                    state[key] = "watching"  # listed: every change from here is seen
                    continue
                meta = obj.get("metadata") or {}
                on_change(
                    event,
                    meta.get("namespace", ""),
                    meta.get("name", ""),
                    meta.get("resourceVersion"),
                )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            state[key] = f"error: {type(e).__name__}"
            log.warning("Secret watch failed (%s); retrying in 5s", e)
            await asyncio.sleep(5)


NamespaceEvent = Callable[[str, str, Mapping[str, str] | None], None]


async def watch_namespaces(
    kube: KubeClient, on_event: NamespaceEvent, state: dict[str, str]
) -> None:
    """Forever: every namespace event (metadata only) to `on_event(event, name, labels)`,
    SYNCED once a listing is in; `state["namespaces"]` says how the watch is doing."""
    while True:
        try:
            async for event, obj in kube.watch_namespace_metadata():
                state["namespaces"] = "watching"
                meta = obj.get("metadata") or {}
                on_event(event, meta.get("name", ""), meta.get("labels") or {})
        except asyncio.CancelledError:
            raise
        except Exception as e:
            state["namespaces"] = f"error: {type(e).__name__}"
            log.warning("namespace watch failed (%s); retrying in 5s", e)
            await asyncio.sleep(5)


async def measure_loop_lag(
    report: Callable[[float], None], tick: float = 0.25, window: float = 10.0
) -> None:
    """Sleep `tick` again and again; the oversleep is how long the loop was busy. The worst
    of each `window` is reported."""
    loop = asyncio.get_running_loop()
    worst, window_start = 0.0, loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(tick)
        worst = max(worst, loop.time() - before - tick)
        if loop.time() - window_start >= window:
            report(round(worst, 4))
            worst, window_start = 0.0, loop.time()
