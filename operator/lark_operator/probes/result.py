"""What a probe found, and how several findings become one reason.

Precedence (first wins): the server cannot be used at all (InvalidURL, Unreachable, Timeout,
AuthFailed, ProbeError); then it is refusing work (AlarmRaised, TooManyConnections,
MemoryPressure); then something degrades (ReplicationLag, Deadlocks, NoConsumers,
QueueBacklog). Lower-ranked findings are kept in the message and in details["problems"].
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lark_operator.hints import hint_for

DEPENDENCIES = ("postgres", "redis", "rabbitmq")

HEALTHY = "Healthy"
INVALID_URL = "InvalidURL"
UNREACHABLE = "Unreachable"
TIMEOUT = "Timeout"
AUTH_FAILED = "AuthFailed"
PROBE_ERROR = "ProbeError"
ALARM_RAISED = "AlarmRaised"
TOO_MANY_CONNECTIONS = "TooManyConnections"
MEMORY_PRESSURE = "MemoryPressure"
REPLICATION_LAG = "ReplicationLag"
DEADLOCKS = "Deadlocks"
NO_CONSUMERS = "NoConsumers"
QUEUE_BACKLOG = "QueueBacklog"

PRECEDENCE: tuple[str, ...] = (
    INVALID_URL,
    UNREACHABLE,
    TIMEOUT,
    AUTH_FAILED,
    PROBE_ERROR,
    ALARM_RAISED,
    TOO_MANY_CONNECTIONS,
    MEMORY_PRESSURE,
    REPLICATION_LAG,
    DEADLOCKS,
    NO_CONSUMERS,
    QUEUE_BACKLOG,
)
_RANK = {reason: i for i, reason in enumerate(PRECEDENCE)}


@dataclass(frozen=True)
class Finding:
    reason: str
    message: str


@dataclass(frozen=True)
class ProbeResult:
    dependency: str
    healthy: bool
    reason: str
    message: str
    latency_ms: float | None
    details: dict[str, str] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.time)

    @property
    def hint(self) -> str:
        return hint_for(self.reason)

    def to_status(self) -> dict[str, Any]:
        """The shape of status.probes.<dependency> in the LarkApp."""
        return {
            "healthy": self.healthy,
            "reason": self.reason,
            "latencyMs": None if self.latency_ms is None else round(self.latency_ms, 1),
            "checkedAt": rfc3339(self.checked_at),
            "message": self.message,
            "details": dict(self.details),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"dependency": self.dependency, **self.to_status(), "hint": self.hint}


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rank(reason: str) -> int:
    """Lower is worse; unknown reasons sort with ProbeError."""
    return _RANK.get(reason, _RANK[PROBE_ERROR])


def worst(findings: Iterable[Finding]) -> Finding | None:
    ordered = sorted(findings, key=lambda f: rank(f.reason))  # stable: first found wins ties
    return ordered[0] if ordered else None


def diagnose(
    dependency: str,
    findings: Iterable[Finding],
    *,
    latency_ms: float | None,
    details: Mapping[str, Any],
    healthy_message: str,
) -> ProbeResult:
    """One result from everything a probe noticed: the worst finding names the reason."""
    ordered = sorted(findings, key=lambda f: rank(f.reason))
    out = {k: str(v) for k, v in details.items() if v is not None}
    if not ordered:
        return ProbeResult(dependency, True, HEALTHY, healthy_message, latency_ms, out)
    top, rest = ordered[0], ordered[1:]
    message = top.message
    if rest:
        message += "; also " + "; ".join(f"{f.reason}: {f.message}" for f in rest)
    out["problems"] = ",".join(dict.fromkeys(f.reason for f in ordered))
    return ProbeResult(dependency, False, top.reason, message, latency_ms, out)


def failure(
    dependency: str,
    reason: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    latency_ms: float | None = None,
) -> ProbeResult:
    return diagnose(
        dependency,
        [Finding(reason, message)],
        latency_ms=latency_ms,
        details=details or {},
        healthy_message="",
    )
