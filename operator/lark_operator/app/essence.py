"""kopf's diffbase storage, building the same essence without deep-copying what it throws
away.

The finalizer's `on.delete` handler makes kopf build every LarkApp event's "essence" (what
it compares for changes): a deep copy of the whole object, after which the status and
most of the metadata are dropped. Every status write comes back as such an event, and at
10,000 LarkApps that copy was 8% of the operator's CPU (py-spy, bench/run.py). The essence
built here is kopf's own, from an object without those parts; tests/unit/app/test_essence.py
checks it is identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf


class AnnotationsDiffBase(kopf.AnnotationsDiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        if extra_fields:  # fields kopf would keep out of the parts dropped here
            return super().build(body=body, extra_fields=extra_fields)
        return super().build(body=kopf.Body(cast(kopf.RawBody, _without_discarded(body))))


def _without_discarded(body: kopf.Body) -> dict[str, Any]:
    """A shallow copy of `body` without its status and managedFields (kopf's essence drops
    both); everything else is shared, and kopf copies it."""
    slim = {k: v for k, v in body.items() if k != "status"}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        slim["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return slim
