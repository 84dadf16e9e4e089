"""kopf decorators, and nothing else: each delegates to the controller.

Registered on import by `lark-operator run` (cli/run.py). kopf keeps its bookkeeping
(finalizer, last-handled configuration) under the larkservice.io prefix.
"""

from __future__ import annotations

from typing import Any

import kopf

from lark_operator import FINALIZER, GROUP, PLURAL, REFRESH_ANNOTATION, VERSION
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
async def changed(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
    before = ((old or {}).get("metadata") or {}).get("annotations") or {}
    after = ((new or {}).get("metadata") or {}).get("annotations") or {}
    forced = after.get(REFRESH_ANNOTATION) not in (None, before.get(REFRESH_ANNOTATION))
    runtime().controller.upsert(body, force_refresh=forced)


@kopf.on.delete(*RESOURCE)
async def deleted(body: kopf.Body, **_: Any) -> None:
    await runtime().controller.remove(body)
