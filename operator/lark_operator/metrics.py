"""Every Prometheus metric the operator exports, defined once.

Labels are bounded: namespace/name of a LarkApp, endpoint paths, numeric codes, fixed
status words. Never a token, a secret, an error message or a request id.
Besides its own `lark_service_*` metrics the registry carries the standard process and
Python runtime metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
`python_gc_*`, ...) that CPU and memory runbooks query.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
# What prometheus_client's default registry would export: this registry is the operator's own.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# --- Open Platform client -------------------------------------------------------------
API_CALLS = Counter(
    "lark_service_api_calls_total",
    "Calls made to the Open Platform, by endpoint and business code ('http_<status>' or "
    "'network' when no code was read).",
    ["endpoint", "code"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "lark_service_api_errors_total",
    "Open Platform calls that failed, by endpoint and code.",
    ["endpoint", "code"],
    registry=REGISTRY,
)
API_CALL_DURATION = Histogram(
    "lark_service_api_call_duration_seconds",
    "Latency of Open Platform calls.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "lark_service_rate_limit_waits_total",
    "Times a call waited: 'local' for the client-side token bucket, 'upstream' for a 429 "
    "or x-ogw-ratelimit-reset.",
    ["source"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "lark_service_rate_limit_wait_seconds_total",
    "Seconds spent waiting for rate limits.",
    ["source"],
    registry=REGISTRY,
)
SINGLEFLIGHT_JOINS = Counter(
    "lark_service_singleflight_joins_total",
    "Token requests that joined a call already in flight instead of making their own.",
    registry=REGISTRY,
)
TOKEN_CACHE_HITS = Counter(
    "lark_service_token_cache_hits_total",
    "Token requests served from the shared token cache without an upstream call.",
    registry=REGISTRY,
)

# --- Tokens -----------------------------------------------------------------------------
TOKEN_REFRESHES = Counter(
    "lark_service_token_refreshes_total",
    "Token refresh attempts per outcome: success (new token), unchanged (same token "
    "re-issued), failure.",
    ["status"],
    registry=REGISTRY,
)
TOKEN_EXPIRY = Gauge(
    "lark_service_token_expiry_timestamp_seconds",
    "Unix time at which the token held in the token Secret expires.",
    ["namespace", "name", "token"],
    registry=REGISTRY,
)
CONSECUTIVE_FAILURES = Gauge(
    "lark_service_consecutive_failures",
    "Consecutive failed refresh attempts of a LarkApp.",
    ["namespace", "name"],
    registry=REGISTRY,
)

# --- Store apps: callbacks, tickets, tenants ------------------------------------------------
CALLBACKS_ACCEPTED = Counter(
    "lark_service_callbacks_accepted_total",
    "Event callbacks accepted at POST /lark/events, by type (url_verification, app_ticket, "
    "app_open, app_uninstalled).",
    ["type"],
    registry=REGISTRY,
)
CALLBACKS_REJECTED = Counter(
    "lark_service_callbacks_rejected_total",
    "Event callbacks refused with a 4xx (nothing changed), by reason: too_large, malformed, "
    "unsigned, bad_signature, stale, replayed, undecryptable, bad_token, unknown_app, "
    "unsupported.",
    ["reason"],
    registry=REGISTRY,
)

STORE_TENANTS = Gauge(
    "lark_service_store_tenants",
    "A store app's tenants: state=wanted (listed, or installed with tenants.all), ready (a "
    "valid token in the Secret), failing (last refresh failed).",
    ["namespace", "name", "state"],
    registry=REGISTRY,
)
TICKET_RECEIVED = Gauge(
    "lark_service_ticket_received_timestamp_seconds",
    "Unix time at which the last app_ticket of a store LarkApp's app arrived.",
    ["namespace", "name"],
    registry=REGISTRY,
)
APP_ACTIVATE_STATUS = Gauge(
    "lark_service_app_activate_status",
    "bot/v3/info's activate_status of the LarkApp's app, verbatim (2 enabled, 1 disabled, "
    "5 licence expired, 6 plan expired); absent while unknown.",
    ["namespace", "name"],
    registry=REGISTRY,
)

# --- Probes -----------------------------------------------------------------------------
PROBE_UP = Gauge(
    "lark_service_probe_up",
    "1 when the last probe of a dependency was healthy, 0 otherwise.",
    ["namespace", "name", "dependency"],
    registry=REGISTRY,
)
PROBE_DURATION = Histogram(
    "lark_service_probe_duration_seconds",
    "Duration of dependency probes (one per shared target per interval).",
    ["dependency"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
PROBES_TOTAL = Counter(
    "lark_service_probes_total",
    "Dependency probes run, by dependency and resulting reason.",
    ["dependency", "reason"],
    registry=REGISTRY,
)

# --- Reconciliation and conditions ---------------------------------------------------------
RECONCILES = Counter(
    "lark_service_reconciles_total",
    "Reconciliations of LarkApps by result (ok, error).",
    ["result"],
    registry=REGISTRY,
)
CONDITION = Gauge(
    "lark_service_condition",
    "1 when the LarkApp's condition has the given status (True/False/Unknown).",
    ["namespace", "name", "type", "status"],
    registry=REGISTRY,
)
CONDITION_REASON = Gauge(
    "lark_service_condition_reason",
    "1 for the current reason of each condition of a LarkApp (bounded vocabulary).",
    ["namespace", "name", "type", "reason"],
    registry=REGISTRY,
)
STATUS_WRITES = Counter(
    "lark_service_status_writes_total",
    "Status patches sent to the apiserver.",
    registry=REGISTRY,
)
EVENTS_EMITTED = Counter(
    "lark_service_events_total",
    "Kubernetes Events emitted, by reason.",
    ["reason"],
    registry=REGISTRY,
)
MANAGED_APPS = Gauge(
    "lark_service_larkapps",
    "LarkApps known to this operator, by phase.",
    ["phase"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "lark_service_reconcile_duration_seconds",
    "Time one reconcile of a LarkApp took (refresh, Secret and status writes, Events).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
KUBE_REQUEST_DURATION = Histogram(
    "lark_service_kube_request_duration_seconds",
    "Latency of the operator's own requests to the Kubernetes API, by HTTP verb.",
    ["verb"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
LEADER = Gauge(
    "lark_service_leader",
    "1 when this replica acts (it holds the leader Lease, or runs without election); 0 for "
    "a standby. No replica at 1 means nothing refreshes tokens.",
    registry=REGISTRY,
)
SCHEDULER_LAG = Gauge(
    "lark_service_scheduler_lag_seconds",
    "How late the last due refresh was started, compared to its due time.",
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Gauge(
    "lark_service_event_loop_lag_seconds",
    "Worst delay of the operator's event loop over the last 10 s (a 0.25 s sleep that "
    "overslept by this much): high values mean the operator is CPU-starved.",
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "lark_service_build_info",
    "Always 1; the operator's version as a label.",
    ["version"],
    registry=REGISTRY,
)


# Counters with a fixed label vocabulary start at 0. A child created by its first inc()
# is first scraped at 1 with no earlier sample, so rate()/increase() never see that first
# event: one reconcile error or one 429 would stay invisible to the alerts.
for _result in ("ok", "error"):
    RECONCILES.labels(_result)
for _source in ("local", "upstream"):
    RATE_LIMIT_WAITS.labels(_source)
    RATE_LIMIT_WAIT_SECONDS.labels(_source)
for _status in ("success", "unchanged", "failure"):
    TOKEN_REFRESHES.labels(_status)

TOKEN_TYPES = ("tenant", "app")
CONDITION_STATUSES = ("True", "False", "Unknown")


# The series of each LarkApp, so that deleting one drops them without scanning every series
# of every LarkApp (deleting 5,000 LarkApps would otherwise be quadratic).
_APP_SERIES: dict[tuple[str, str], set[tuple[Any, tuple[str, ...]]]] = {}


def _set(metric: Any, labels: tuple[str, ...], value: float) -> None:
    """Set a per-LarkApp series (labels start with namespace, name)."""
    metric.labels(*labels).set(value)
    _APP_SERIES.setdefault((labels[0], labels[1]), set()).add((metric, labels))


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
    series = _APP_SERIES.get((labels[0], labels[1]))
    if series is not None:
        series.discard((metric, labels))


def set_consecutive_failures(namespace: str, name: str, failures: int) -> None:
    _set(CONSECUTIVE_FAILURES, (namespace, name), failures)


def set_probe_up(namespace: str, name: str, dependency: str, up: bool) -> None:
    _set(PROBE_UP, (namespace, name, dependency), 1 if up else 0)


def set_token_expiry(namespace: str, name: str, expires_at: Mapping[str, float]) -> None:
    """Expiry of each token held for a LarkApp; a token type no longer held loses its series
    (or an alert would count down to a token nobody renews any more)."""
    for token_type in TOKEN_TYPES:
        if token_type in expires_at:
            _set(TOKEN_EXPIRY, (namespace, name, token_type), expires_at[token_type])
        else:
            _remove(TOKEN_EXPIRY, namespace, name, token_type)


def export_conditions(
    namespace: str,
    name: str,
    conditions: Iterable[Mapping[str, Any]],
    previous: Iterable[Mapping[str, Any]] = (),
) -> None:
    """lark_service_condition / lark_service_condition_reason from a LarkApp's conditions.
    A condition or reason present in `previous` and gone now loses its series, so a probe
    that is no longer configured or a reason that no longer holds never lingers at 1."""
    current = {str(c["type"]): c for c in conditions}
    for c in previous:
        ctype, reason = str(c.get("type")), c.get("reason")
        now = current.get(ctype)
        if now is None:
            for s in CONDITION_STATUSES:
                _remove(CONDITION, namespace, name, ctype, s)
        if reason and (now is None or now.get("reason") != reason):
            _remove(CONDITION_REASON, namespace, name, ctype, str(reason))
    for ctype, c in current.items():
        for s in CONDITION_STATUSES:
            _set(CONDITION, (namespace, name, ctype, s), 1 if c.get("status") == s else 0)
        if c.get("reason"):
            _set(CONDITION_REASON, (namespace, name, ctype, str(c["reason"])), 1)


def count_phase(counted: str | None, phase: str | None) -> str | None:
    """Move one LarkApp from phase `counted` to `phase` in lark_service_larkapps; returns
    the phase now counted for it (None: not counted, e.g. deleted)."""
    if counted != phase:
        if counted is not None:
            MANAGED_APPS.labels(counted).dec()
        if phase is not None:
            MANAGED_APPS.labels(phase).inc()
    return phase


def set_store(
    namespace: str, name: str, wanted: int, ready: int, failing: int, ticket_at: float | None
) -> None:
    for state, n in (("wanted", wanted), ("ready", ready), ("failing", failing)):
        _set(STORE_TENANTS, (namespace, name, state), n)
    if ticket_at is not None:
        _set(TICKET_RECEIVED, (namespace, name), ticket_at)


def set_activate_status(namespace: str, name: str, status: int | None) -> None:
    if status is None:
        _remove(APP_ACTIVATE_STATUS, namespace, name)
    else:
        _set(APP_ACTIVATE_STATUS, (namespace, name), status)


def forget_probes(namespace: str, name: str, dependency: str | None = None) -> None:
    """Drop lark_service_probe_up of a dependency no longer probed (all when None)."""
    for dep in (dependency,) if dependency else ("postgres", "redis", "rabbitmq"):
        _remove(PROBE_UP, namespace, name, dep)


def forget_larkapp(namespace: str, name: str) -> None:
    """Drop every per-LarkApp series when the object is deleted (bounded cardinality)."""
    for metric, labels in _APP_SERIES.pop((namespace, name), set()):
        with contextlib.suppress(KeyError):
            metric.remove(*labels)
