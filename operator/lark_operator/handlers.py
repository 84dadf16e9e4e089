"""kopf decorators, and nothing else: each delegates to the controller.

Registered on import by `lark-operator run` (cli/run.py). kopf keeps its bookkeeping
(finalizer, last-handled configuration) under the larkservice.io prefix.
"""

from __future__ import annotations

from typing import Any

import kopf

from lark_operator import (
    FINALIZER,
    GROUP,
    PLURAL,
    REFRESH_ANNOTATION,
    REFRESH_HANDLED_ANNOTATION,
    VERSION,
)
from lark_operator.runtime import runtime

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False  # Events are ours, on transitions only
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = 100
    await runtime().start(settings)


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await runtime().stop()


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
async def observe(body: kopf.Body, **_: Any) -> None:
    runtime().controller.upsert(body)


@kopf.on.update(*RESOURCE)
async def changed(body: kopf.Body, **_: Any) -> None:
    runtime().controller.upsert(body)


@kopf.on.event(*RESOURCE)
async def refresh_requested(body: kopf.Body, type: str | None, **_: Any) -> None:
    """kopf leaves annotations under its own prefix out of its diffs, so the refresh
    annotation is watched here, on every event, against the value last handled (kept in
    a sibling annotation, so a request made while the operator was down is not lost)."""
    if type == "DELETED":
        return
    annotations = body.get("metadata", {}).get("annotations") or {}
    requested = annotations.get(REFRESH_ANNOTATION)
    if requested and requested != annotations.get(REFRESH_HANDLED_ANNOTATION):
        runtime().controller.upsert(body, force_refresh=True, refresh_request=requested)


@kopf.on.delete(*RESOURCE)
async def deleted(body: kopf.Body, **_: Any) -> None:
    await runtime().controller.remove(body)
