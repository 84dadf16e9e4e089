"""What the apiserver answered when it refused a request."""

from __future__ import annotations

import json


class KubeError(Exception):
    def __init__(self, status: int, message: str, reason: str = ""):
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason


class Conflict(KubeError):
    """409: someone else wrote first (or a precondition did not hold)."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""


def from_response(status: int, raw: bytes) -> KubeError:
    """The error for an answer of `status` with body `raw` (a metav1.Status, usually)."""
    try:
        body = json.loads(raw)
        message, reason = str(body.get("message", "")), str(body.get("reason", ""))
    except ValueError:
        message, reason = raw[:300].decode(errors="replace"), ""
    if status == 409:
        return Conflict(status, message, reason)
    if status == 410:
        return Gone(status, message, reason)
    return KubeError(status, message, reason)
