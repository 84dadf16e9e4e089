"""Condition types, reasons, phases and Event reasons: the fixed vocabulary of status
(DESIGN.md, "The resource"). StrEnum members are their strings, so status dicts, metric
labels and tests read the same words; grouping sets say what a reason means."""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    CREDENTIALS_VALID = "CredentialsValid"
    TOKEN_READY = "TokenReady"
    POSTGRES_HEALTHY = "PostgresHealthy"
    REDIS_HEALTHY = "RedisHealthy"
    RABBITMQ_HEALTHY = "RabbitMQHealthy"
    APP_AVAILABLE = "AppAvailable"
    ROLLOUT_RESTART = "RolloutRestart"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Reason(StrEnum):
    # shared
    PENDING = "Pending"
    READY = "Ready"
    # Reconciling / Stalled (kstatus)
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    LATEST_GENERATION_NOT_OBSERVED = "LatestGenerationNotObserved"
    # CredentialsValid
    VALID = "Valid"
    INVALID_CREDENTIALS = "InvalidCredentials"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    DOMAIN_NOT_ALLOWED = "DomainNotAllowed"
    NOT_ALLOWED = "NotAllowed"
    IP_DENIED = "IPDenied"
    APP_DISABLED = "AppDisabled"
    SCOPE_MISSING = "ScopeMissing"
    QUOTA_EXCEEDED = "QuotaExceeded"
    RATE_LIMITED = "RateLimited"
    UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
    TICKET_MISSING = "TicketMissing"
    UNKNOWN_ERROR = "UnknownError"
    # TokenReady (and lastError)
    ISSUED = "Issued"
    REFRESHED = "Refreshed"
    REFRESH_FAILED = "RefreshFailed"
    EXPIRED = "Expired"
    SUSPENDED = "Suspended"
    SECRET_NOT_OWNED = "SecretNotOwned"
    SECRET_WRITE_FAILED = "SecretWriteFailed"
    TEMPLATE_ERROR = "TemplateError"
    # RolloutRestart (target.rolloutRestart)
    ENABLED = "Enabled"
    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    ROLLOUT_FAILED = "RolloutFailed"
    # the token is valid, but the operator cannot refresh it before it expires
    REFRESH_CAPACITY_EXCEEDED = "RefreshCapacityExceeded"
    # AppAvailable
    AVAILABLE = "Available"
    LICENSE_EXPIRED = "LicenseExpired"
    PLAN_EXPIRED = "PlanExpired"
    UNKNOWN = "Unknown"
    # probes
    HEALTHY = "Healthy"
    UNREACHABLE = "Unreachable"
    TIMEOUT = "Timeout"
    AUTH_FAILED = "AuthFailed"
    TOO_MANY_CONNECTIONS = "TooManyConnections"
    MEMORY_PRESSURE = "MemoryPressure"
    REPLICATION_LAG = "ReplicationLag"
    DEADLOCKS = "Deadlocks"
    NO_CONSUMERS = "NoConsumers"
    QUEUE_BACKLOG = "QueueBacklog"
    ALARM_RAISED = "AlarmRaised"
    INVALID_URL = "InvalidURL"
    PROBE_ERROR = "ProbeError"


R = Reason

# CredentialsValid reasons that say the credentials/config are wrong (status False), as
# opposed to "could not tell" (status Unknown).
CREDENTIAL_FAILURES = frozenset(
    {
        R.INVALID_CREDENTIALS,
        R.SECRET_NOT_FOUND,
        R.SECRET_KEY_MISSING,
        R.IP_DENIED,
        R.APP_DISABLED,
        R.SCOPE_MISSING,
        R.QUOTA_EXCEEDED,
        R.DOMAIN_NOT_ALLOWED,
        R.NOT_ALLOWED,
    }
)
# Every reason the CredentialsValid condition may carry.
CREDENTIALS_REASONS = CREDENTIAL_FAILURES | {
    R.VALID,
    R.RATE_LIMITED,
    R.UPSTREAM_UNAVAILABLE,
    R.TICKET_MISSING,
    R.UNKNOWN_ERROR,
}
# Condition reasons that stop a LarkApp until a person acts, per condition type (a condition
# counts only while its status is False): Stalled=True, kstatus Failed (DESIGN.md).
STALLED_BY: dict[ConditionType, frozenset[Reason]] = {
    ConditionType.CREDENTIALS_VALID: CREDENTIAL_FAILURES,
    ConditionType.TOKEN_READY: frozenset({R.SECRET_NOT_OWNED, R.TEMPLATE_ERROR}),
    ConditionType.APP_AVAILABLE: frozenset({R.APP_DISABLED, R.LICENSE_EXPIRED, R.PLAN_EXPIRED}),
}
# lastError reasons that say the token Secret was not written (the token may be fine).
WRITE_FAILURES = frozenset({R.SECRET_NOT_OWNED, R.SECRET_WRITE_FAILED, R.TEMPLATE_ERROR})


class Phase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class EventReason(StrEnum):
    CREDENTIALS_VALIDATED = "CredentialsValidated"
    CREDENTIALS_INVALID = "CredentialsInvalid"
    RATE_LIMITED = "RateLimited"
    TOKEN_REFRESHED = "TokenRefreshed"
    TOKEN_REFRESH_FAILED = "TokenRefreshFailed"
    TOKEN_EXPIRED = "TokenExpired"
    SECRET_NOT_OWNED = "SecretNotOwned"
    REFRESH_CAPACITY_EXCEEDED = "RefreshCapacityExceeded"
    PROBE_FAILED = "ProbeFailed"
    PROBE_RECOVERED = "ProbeRecovered"
    TEMPLATE_ERROR = "TemplateError"
    ROLLOUT_RESTART_FAILED = "RolloutRestartFailed"
