"""kopf decorators, and nothing else: each delegates to the controller.

Registered on import by `lark-operator run` (cli/run.py).

Why `on.event` and not `on.create/update/resume`: the controller keeps every LarkApp in
memory and decides itself what changed, so kopf's change detection would only cost two
extra writes per object (the last-handled-configuration annotation and its progress
bookkeeping) and slow a burst of creations. `on.event` writes nothing. A finalizer is put
only on the LarkApps whose deletion needs the operator before the object goes (see
`needs_finalizer`); kopf keeps its bookkeeping for those under the larkservice.io prefix.
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
    # No cap on per-object workers: with a cap of N, a burst of creations is served N at a
    # time, each batch waiting for idle workers to time out (200 capped a burst of 1,000 at
    # ~40 objects/s). A worker is a small task that exits after idle_timeout.
    settings.batching.worker_limit = None
    settings.batching.idle_timeout = 2.0
    settings.batching.batch_window = 0.05
    await runtime().start(settings)


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await runtime().stop()


@kopf.on.event(*RESOURCE)
async def observe(body: kopf.Body, type: str | None, **_: Any) -> None:
    """Every event of every LarkApp: the initial listing (type None), ADDED, MODIFIED,
    DELETED. The refresh annotation is compared with the value last handled (kept in a
    sibling annotation, so a request made while the operator was down is not lost)."""
    controller = runtime().controller
    if type == "DELETED":
        await controller.remove(body)
        return
    annotations = body.get("metadata", {}).get("annotations") or {}
    requested = annotations.get(REFRESH_ANNOTATION)
    if requested and requested != annotations.get(REFRESH_HANDLED_ANNOTATION):
        controller.upsert(body, force_refresh=True, refresh_request=requested)
    else:
        controller.upsert(body)


def needs_finalizer(spec: kopf.Spec, **_: Any) -> bool:
    """Only two policies need the operator to act before the LarkApp is gone: Retain with
    an owner reference (cut it, or the garbage collector takes the Secret) and Delete
    without one (nobody else would delete it). Owner+Delete is the garbage collector's job
    (the operator deletes it too when it sees the deletion), Orphan+Retain needs nothing."""
    target = spec.get("target") or {}
    owner = target.get("creationPolicy", "Owner") == "Owner"
    delete = target.get("deletionPolicy", "Delete") == "Delete"
    return owner != delete


@kopf.on.delete(*RESOURCE, when=needs_finalizer)
async def deleted(body: kopf.Body, **_: Any) -> None:
    await runtime().controller.remove(body)
