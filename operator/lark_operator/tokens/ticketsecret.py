"""A store app's ticket Secret, pure: its name, the manifest and its inverse.

One Secret per store app in the cluster resource namespace, labelled as the operator's
(the chart's admission policy lets the operator create only labelled Secrets). It holds
what must survive a restart and reach a standby: the last app_ticket (data `app_ticket`,
its arrival in an annotation) and, for `tenants.all`, the tenants learned from app_open
(data `tenants`, a JSON list).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.names import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    STORE_APP_LABEL,
    TICKET_RECEIVED_ANNOTATION,
)
from lark_operator.vocabulary.timefmt import parse_rfc3339, rfc3339

TENANT_KEY = re.compile(r"[-._a-zA-Z0-9]{1,128}")


@dataclass(frozen=True)
class StoreRecord:
    """What the ticket Secret holds (the ticket is never shown)."""

    app_id: str
    ticket: str | None = field(default=None, repr=False)
    received_at: float | None = None
    tenants: frozenset[str] = frozenset()


def secret_name(app_id: str) -> str:
    """A DNS-1123 name per app id (app ids are case-sensitive: the hash keeps two apart)."""
    readable = re.sub(r"[^a-z0-9]+", "-", app_id.lower()).strip("-")[:40]
    return f"lark-store-{readable}-{sha256_hex(app_id)[:10]}"


def label_value(app_id: str) -> str:
    return app_id if len(app_id) <= 63 else sha256_hex(app_id)[:63]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build(namespace: str, record: StoreRecord) -> dict[str, Any]:
    data = {"app_id": _b64(record.app_id), "tenants": _b64(json.dumps(sorted(record.tenants)))}
    annotations = {}
    if record.ticket is not None:
        data["app_ticket"] = _b64(record.ticket)
        annotations[TICKET_RECEIVED_ANNOTATION] = rfc3339(record.received_at) or ""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(record.app_id),
            "namespace": namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                STORE_APP_LABEL: label_value(record.app_id),
            },
            "annotations": annotations,
        },
        "data": data,
    }


def _text(data: Mapping[str, Any], key: str) -> str | None:
    try:
        return base64.b64decode(data[key]).decode() if data.get(key) else None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def read(secret: Mapping[str, Any] | None, app_id: str) -> StoreRecord:
    """The record in `secret` (an empty one when absent, not ours, or for another app)."""
    meta = (secret or {}).get("metadata") or {}
    labels = meta.get("labels") or {}
    data = (secret or {}).get("data") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE or _text(data, "app_id") != app_id:
        return StoreRecord(app_id)
    try:
        listed = json.loads(_text(data, "tenants") or "[]")
    except ValueError:
        listed = []
    tenants = (
        frozenset(t for t in listed if isinstance(t, str) and TENANT_KEY.fullmatch(t))
        if isinstance(listed, list)
        else frozenset()
    )
    received = parse_rfc3339((meta.get("annotations") or {}).get(TICKET_RECEIVED_ANNOTATION))
    return StoreRecord(app_id, _text(data, "app_ticket"), received, tenants)


def app_of(secret: Mapping[str, Any] | None) -> str | None:
    return _text((secret or {}).get("data") or {}, "app_id")
