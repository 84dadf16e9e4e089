"""kopf decorators, and nothing else: each delegates to the reconciler in its `memo` (the
Wiring that app/main.py hands to kopf).

Why `on.event` and not `on.create/update/resume`: the reconciler keeps every LarkApp in
memory and decides itself what changed, so kopf's change detection would only cost two
extra writes per object (the last-handled-configuration annotation and its progress
bookkeeping) and slow a burst of creations. `on.event` writes nothing. A finalizer is put
only on the LarkApps whose deletion needs the operator before the object goes (see
`needs_finalizer`); kopf keeps its bookkeeping for those under the larkservice.io prefix.
"""

from __future__ import annotations

from typing import Any

import kopf

from lark_operator.app import login
from lark_operator.app.essence import AnnotationsDiffBase
from lark_operator.app.wiring import Wiring
from lark_operator.vocabulary.names import (
    CLUSTER_PLURAL,
    FINALIZER,
    GROUP,
    PLURAL,
    REFRESH_ANNOTATION,
    REFRESH_HANDLED_ANNOTATION,
    VERSION,
)

RESOURCE = (GROUP, VERSION, PLURAL)


# kopf logs in through the operator's own loader: the same server, user and rules.
kopf.on.login()(login.login)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Wiring, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = AnnotationsDiffBase(
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
    await memo.start()


@kopf.on.cleanup()
async def shutdown(memo: Wiring, **_: Any) -> None:
    await memo.stop()


@kopf.on.event(*RESOURCE)
async def observe(body: kopf.Body, type: str | None, memo: Wiring, **_: Any) -> None:
    """Every event of every LarkApp: the initial listing (type None), ADDED, MODIFIED,
    DELETED. The refresh annotation is compared with the value last handled (kept in a
    sibling annotation, so a request made while the operator was down is not lost)."""
    reconciler = _reconciler(memo)
    if type == "DELETED":
        await reconciler.remove(body)
        return
    annotations = body.get("metadata", {}).get("annotations") or {}
    requested = annotations.get(REFRESH_ANNOTATION)
    if requested and requested != annotations.get(REFRESH_HANDLED_ANNOTATION):
        reconciler.observe(body, refresh_request=requested)
    else:
        reconciler.observe(body)


@kopf.on.event(GROUP, VERSION, CLUSTER_PLURAL)
async def observe_cluster(body: kopf.Body, type: str | None, memo: Wiring, **_: Any) -> None:
    """Every event of every ClusterLarkApp. Deleting one needs nothing first: the LarkApps
    using it are refused from then on and keep their tokens until they expire."""
    clusters = _reconciler(memo).clusters
    if type == "DELETED":
        clusters.remove(body)
    else:
        clusters.observe(body)


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
async def deleted(body: kopf.Body, memo: Wiring, **_: Any) -> None:
    await _reconciler(memo).remove(body)


def _reconciler(memo: Wiring) -> Any:
    if memo.reconciler is None:
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return memo.reconciler
