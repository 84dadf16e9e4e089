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
from typing import Any

from lark_operator.vocabulary.dependencies import DEPENDENCIES
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.reasons import Reason
from lark_operator.vocabulary.timefmt import rfc3339

__all__ = ["DEPENDENCIES"]

HEALTHY = Reason.HEALTHY
INVALID_URL = Reason.INVALID_URL
UNREACHABLE = Reason.UNREACHABLE
TIMEOUT = Reason.TIMEOUT
AUTH_FAILED = Reason.AUTH_FAILED
PROBE_ERROR = Reason.PROBE_ERROR
ALARM_RAISED = Reason.ALARM_RAISED
TOO_MANY_CONNECTIONS = Reason.TOO_MANY_CONNECTIONS
MEMORY_PRESSURE = Reason.MEMORY_PRESSURE
REPLICATION_LAG = Reason.REPLICATION_LAG
DEADLOCKS = Reason.DEADLOCKS
NO_CONSUMERS = Reason.NO_CONSUMERS
QUEUE_BACKLOG = Reason.QUEUE_BACKLOG

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
        """status.probes.<dependency> in the LarkApp: the one place a result is shaped."""
        entry: dict[str, Any] = {
            "healthy": bool(self.healthy),
            "reason": str(self.reason),
            "checkedAt": rfc3339(self.checked_at),
            "message": self.message,
            "details": {str(k): str(v) for k, v in (self.details or {}).items()},
        }
        if self.latency_ms is not None:
            entry["latencyMs"] = round(float(self.latency_ms), 2)
        return entry

    def to_dict(self) -> dict[str, Any]:
        """For the CLI's JSON output (latencyMs always present, null when unknown)."""
        return {
            "dependency": self.dependency,
            "latencyMs": None,
            **self.to_status(),
            "hint": self.hint,
        }


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
