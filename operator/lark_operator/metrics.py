"""Every Prometheus metric the operator exports, defined once.

Labels are bounded: namespace/name of a LarkApp, endpoint paths, numeric codes, fixed
status words. Never a token, a secret, an error message or a request id.
Besides its own `lark_service_*` metrics the registry carries the standard process and
Python runtime metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
`python_gc_*`, ...) that CPU and memory runbooks query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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

# --- Probes -----------------------------------------------------------------------------
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
REFRESH_CAPACITY = Gauge(
    "lark_service_refresh_capacity",
    "Token refreshes per second this replica completes, as measured while it had more work "
    "than it could start at once (a floor until then; or the value it was given).",
    registry=REGISTRY,
)
REFRESH_SHORTFALL = Gauge(
    "lark_service_refresh_shortfall",
    "LarkApps whose token would expire before its refresh even if every refresh started as "
    "early as the platform allows, at the measured capacity: more than 0 means tokens will "
    "lapse unless the load drops or the capacity grows (docs/scaling.md).",
    registry=REGISTRY,
)
REFRESHES_BROUGHT_FORWARD = Counter(
    "lark_service_refreshes_brought_forward_total",
    "Refreshes started before renewBefore (inside the platform's re-issue window) so that "
    "a wave of tokens expiring together fits the measured capacity.",
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


# --- Per-LarkApp series ----------------------------------------------------------------------
# Kept as a few plain values per LarkApp and turned into samples only when /metrics is
# scraped (a prometheus_client child per series costs ~1 KB: ~18 of them per LarkApp were
# most of the operator's memory per LarkApp at 10,000). `configure(larkapp_series=...)`:
# "all" exports every series of every LarkApp; "unhealthy" exports the token expiry of
# every LarkApp (and a store app's ticket and tenant counts) and the rest only for the
# LarkApps that are not Ready, have failures or a probe down — every alert still sees what
# it matches, a healthy fleet costs one series per LarkApp and token type.
PER_LARKAPP: dict[str, tuple[str, tuple[str, ...]]] = {
    "lark_service_token_expiry_timestamp_seconds": (
        "Unix time at which the token held in the token Secret expires.",
        ("namespace", "name", "token"),
    ),
    "lark_service_consecutive_failures": (
        "Consecutive failed refresh attempts of a LarkApp.",
        ("namespace", "name"),
    ),
    "lark_service_probe_up": (
        "1 when the last probe of a dependency was healthy, 0 otherwise.",
        ("namespace", "name", "dependency"),
    ),
    "lark_service_condition": (
        "1 when the LarkApp's condition has the given status (True/False/Unknown).",
        ("namespace", "name", "type", "status"),
    ),
    "lark_service_condition_reason": (
        "1 for the current reason of each condition of a LarkApp (bounded vocabulary).",
        ("namespace", "name", "type", "reason"),
    ),
    "lark_service_store_tenants": (
        "A store app's tenants: state=wanted (listed, or installed with tenants.all), ready (a "
        "valid token in the Secret), failing (last refresh failed).",
        ("namespace", "name", "state"),
    ),
    "lark_service_ticket_received_timestamp_seconds": (
        "Unix time at which the last app_ticket of a store LarkApp's app arrived.",
        ("namespace", "name"),
    ),
    "lark_service_app_activate_status": (
        "bot/v3/info's activate_status of the LarkApp's app, verbatim (2 enabled, 1 disabled, "
        "5 licence expired, 6 plan expired); absent while unknown.",
        ("namespace", "name"),
    ),
}
LARKAPP_SERIES = ("all", "unhealthy")
TOKEN_TYPES = ("tenant", "app")
CONDITION_STATUSES = ("True", "False", "Unknown")

Conditions = tuple[tuple[str, str, str], ...]  # (type, status, reason)


@dataclass(slots=True)
class _Series:
    conditions: Conditions = ()
    failures: int | None = None
    expiry: tuple[tuple[str, float], ...] = ()  # (token type, Unix time)
    probes: tuple[tuple[str, bool], ...] = ()  # (dependency, up)
    store: tuple[tuple[str, int], ...] = ()  # a store app's tenants: (state, count)
    ticket_at: float | None = None  # a store app's last app_ticket
    activate_status: int | None = None  # bot/v3/info

    def healthy(self) -> bool:
        ready = any(t == "Ready" and s == "True" for t, s, _ in self.conditions)
        return ready and not self.failures and all(up for _, up in self.probes)


_LARKAPPS: dict[tuple[str, str], _Series] = {}
_SHARED: dict[Any, Any] = {}  # one copy of each conditions tuple (healthy LarkApps share it)
_mode = {"series": "all"}


def configure(larkapp_series: str) -> None:
    if larkapp_series not in LARKAPP_SERIES:
        raise ValueError(f"larkapp_series must be one of {LARKAPP_SERIES}")
    _mode["series"] = larkapp_series


def _shared(value: Any) -> Any:
    if len(_SHARED) > 10_000:  # a bounded vocabulary in practice; bounded here anyway
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


def _series(namespace: str, name: str) -> _Series:
    key = (namespace, name)
    entry = _LARKAPPS.get(key)
    if entry is None:
        entry = _LARKAPPS[key] = _Series()
    return entry


class _PerLarkAppCollector(Collector):
    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            n: GaugeMetricFamily(n, doc, labels=labels) for n, (doc, labels) in PER_LARKAPP.items()
        }

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        fams = self._families()
        expiry, failures, probes, cond, reason, tenants, ticket, activate = fams.values()
        every = _mode["series"] == "all"
        # A snapshot: scrapes run in a thread while the event loop updates entries (each
        # field is replaced whole, never changed in place).
        for (ns, name), s in list(_LARKAPPS.items()):
            for token_type, at in s.expiry:
                expiry.add_metric([ns, name, token_type], at)
            # Store apps only (few); LarkStoreTicketStale matches Ready ones too.
            for state, n in s.store:
                tenants.add_metric([ns, name, state], n)
            if s.ticket_at is not None:
                ticket.add_metric([ns, name], s.ticket_at)
            if not every and s.healthy():
                continue
            if s.activate_status is not None:
                activate.add_metric([ns, name], s.activate_status)
            if s.failures is not None:
                failures.add_metric([ns, name], s.failures)
            for dep, up in s.probes:
                probes.add_metric([ns, name, dep], 1 if up else 0)
            for ctype, status, why in s.conditions:
                for st in CONDITION_STATUSES:
                    cond.add_metric([ns, name, ctype, st], 1 if status == st else 0)
                if why:
                    reason.add_metric([ns, name, ctype, why], 1)
        return list(fams.values())


REGISTRY.register(_PerLarkAppCollector())


def set_consecutive_failures(namespace: str, name: str, failures: int) -> None:
    _series(namespace, name).failures = failures


def set_probe_up(namespace: str, name: str, dependency: str, up: bool) -> None:
    entry = _series(namespace, name)
    others = tuple(p for p in entry.probes if p[0] != dependency)
    entry.probes = _shared((*others, (str(dependency), bool(up))))


def set_token_expiry(namespace: str, name: str, expires_at: Mapping[str, float]) -> None:
    """Expiry of each token held for a LarkApp; a token type no longer held loses its series
    (or an alert would count down to a token nobody renews any more)."""
    _series(namespace, name).expiry = tuple(
        (t, float(expires_at[t])) for t in TOKEN_TYPES if t in expires_at
    )


def export_conditions(namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]) -> None:
    """lark_service_condition / lark_service_condition_reason from a LarkApp's conditions.
    A condition or reason gone from the status loses its series, so a probe that is no
    longer configured or a reason that no longer holds never lingers at 1."""
    _series(namespace, name).conditions = _shared(
        tuple(
            (str(c["type"]), str(c.get("status")), str(c.get("reason") or "")) for c in conditions
        )
    )


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
    entry = _series(namespace, name)
    entry.store = (("wanted", wanted), ("ready", ready), ("failing", failing))
    if ticket_at is not None:
        entry.ticket_at = ticket_at


def set_activate_status(namespace: str, name: str, status: int | None) -> None:
    _series(namespace, name).activate_status = status


def forget_probes(namespace: str, name: str, dependency: str | None = None) -> None:
    """Drop lark_service_probe_up of a dependency no longer probed (all when None)."""
    entry = _LARKAPPS.get((namespace, name))
    if entry is not None:
        entry.probes = tuple(p for p in entry.probes if dependency and p[0] != dependency)


def forget_larkapp(namespace: str, name: str) -> None:
    """Drop every per-LarkApp series when the object is deleted (bounded cardinality)."""
    _LARKAPPS.pop((namespace, name), None)
