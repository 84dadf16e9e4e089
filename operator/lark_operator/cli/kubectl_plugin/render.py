"""What `kubectl lark` prints, as pure functions of LarkApp and ClusterLarkApp objects,
Events and a clock.

Nothing here talks to the cluster, so the unit tests pin the exact text. Inputs are the
objects as the apiserver returns them; status only ever holds fingerprints, never tokens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lark_operator.vocabulary.dependencies import DEPENDENCIES
from lark_operator.vocabulary.hints import hint_for

NOT_RECONCILED = "NotReconciled"
NOT_RECONCILED_HINT = (
    "The operator has not written a status yet: check that it is running and watches this "
    "namespace (lark-operator run --namespace NS / Helm value watchNamespaces)."
)


# --- time ---------------------------------------------------------------------------------
def parse_time(text: Any) -> dt.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def span(seconds: float) -> str:
    """A short, kubectl-like length of time: 45s, 3m20s, 1h52m, 2d3h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def countdown(expires_at: dt.datetime | None, now: dt.datetime) -> str:
    """Time left until `expires_at`: '1h52m', 'EXPIRED' once past, '-' when unknown."""
    if expires_at is None:
        return "-"
    left = (expires_at - now).total_seconds()
    return "EXPIRED" if left <= 0 else span(left)


def relative(when: dt.datetime | None, now: dt.datetime) -> str:
    """'in 5m' for the future, '5m ago' for the past."""
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    return f"in {span(delta)}" if delta > 0 else f"{span(-delta)} ago"


def strip_hint(message: str) -> str:
    """The Ready condition's message ends in ' Hint: ...'; the hint is printed separately."""
    head, sep, _ = message.partition(" Hint: ")
    return head if sep else message


# --- status table -------------------------------------------------------------------------
def conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or []}


class _Readiness:
    """What a status row says of readiness: the Ready condition's status and reason."""

    ready: str
    reason: str

    @property
    def is_ready(self) -> bool:
        return self.ready == "True"

    @property
    def hint(self) -> str:
        return NOT_RECONCILED_HINT if self.reason == NOT_RECONCILED else hint_for(self.reason)


@dataclass(frozen=True)
class Row(_Readiness):
    namespace: str
    name: str
    app_id: str
    ready: str  # True | False | Unknown | - (no status yet)
    phase: str
    reason: str
    message: str
    expires_at: str | None
    expires_in_seconds: int | None
    probes: dict[str, str | None] = field(default_factory=dict)  # dependency -> reason
    available: str | None = None  # AppAvailable's reason (bot/v3/info); None: not checked


def row(obj: Mapping[str, Any], now: dt.datetime) -> Row:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    conds = conditions(obj)
    ready = conds.get("Ready")
    expires = parse_time((status.get("token") or {}).get("expiresAt"))
    return Row(
        namespace=str(meta.get("namespace", "")),
        name=str(meta["name"]),
        app_id=app_of(spec),
        ready=str(ready.get("status")) if ready else "-",
        phase=str(status.get("phase") or "-"),
        reason=str(ready.get("reason", "")) if ready else NOT_RECONCILED,
        message=strip_hint(str(ready.get("message", ""))) if ready else "",
        expires_at=(status.get("token") or {}).get("expiresAt"),
        expires_in_seconds=int((expires - now).total_seconds()) if expires else None,
        probes={
            dep: (str(conds[dep.condition].get("reason")) if dep.condition in conds else None)
            for dep in DEPENDENCIES
        },
        available=str(conds["AppAvailable"].get("reason")) if "AppAvailable" in conds else None,
    )


def app_of(spec: Mapping[str, Any]) -> str:
    """The App ID column: the appId, or the ClusterLarkApp an appRef names."""
    ref = spec.get("appRef") or {}
    if ref.get("name"):
        return f"clusterlarkapp/{ref['name']}"
    return str(spec.get("appId", "-"))


@dataclass(frozen=True)
class ClusterRow(_Readiness):
    name: str
    app_id: str
    ready: str
    reason: str
    message: str
    expires_at: str | None
    expires_in_seconds: int | None
    larkapps: int | None  # using it
    refused: int | None  # naming it from a namespace it does not allow


def cluster_row(obj: Mapping[str, Any], now: dt.datetime) -> ClusterRow:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready = conditions(obj).get("Ready")
    token = status.get("token") or {}
    expires = parse_time(token.get("expiresAt"))
    return ClusterRow(
        name=str(obj["metadata"]["name"]),
        app_id=str(spec.get("appId", "-")),
        ready=str(ready.get("status")) if ready else "-",
        reason=str(ready.get("reason", "")) if ready else NOT_RECONCILED,
        message=strip_hint(str(ready.get("message", ""))) if ready else "",
        expires_at=token.get("expiresAt"),
        expires_in_seconds=int((expires - now).total_seconds()) if expires else None,
        larkapps=status.get("larkApps"),
        refused=status.get("refusedLarkApps"),
    )


CLUSTER_HEADER = (
    "CLUSTERLARKAPP",
    "APP ID",
    "READY",
    "REASON",
    "TOKEN EXPIRES IN",
    "LARKAPPS",
    "REFUSED",
)


def cluster_cells(r: ClusterRow, now: dt.datetime) -> tuple[str, ...]:
    count = (str(r.larkapps) if r.larkapps is not None else "-"), str(r.refused or 0)
    expires = countdown(parse_time(r.expires_at), now)
    return (r.name, r.app_id, r.ready, r.reason or "-", expires, *count)


HEADER = (
    "NAMESPACE",
    "NAME",
    "APP ID",
    "READY",
    "PHASE",
    "APP AVAILABLE",
    "TOKEN EXPIRES IN",
    "POSTGRES",
    "REDIS",
    "RABBITMQ",
)


def cells(r: Row, now: dt.datetime) -> tuple[str, ...]:
    expires = countdown(parse_time(r.expires_at), now)
    return (
        r.namespace,
        r.name,
        r.app_id,
        r.ready,
        r.phase,
        r.available or "-",
        expires,
        *(r.probes.get(dep) or "-" for dep in DEPENDENCIES),
    )


def table(lines: Sequence[Sequence[str]], gap: int = 3) -> str:
    """Left-aligned columns, as kubectl prints them."""
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        text = (" " * gap).join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        out.append(text.rstrip())
    return "\n".join(out)


def status_text(rows: Sequence[Row], now: dt.datetime, clusters: Sequence[ClusterRow] = ()) -> str:
    """The LarkApps' table, the ClusterLarkApps' (when any), then one line per object that
    is not Ready: its reason and the hint."""
    parts = []
    if rows:
        parts.append(table([HEADER, *(cells(r, now) for r in rows)]))
    if clusters:
        parts.append(table([CLUSTER_HEADER, *(cluster_cells(c, now) for c in clusters)]))
    troubled = [(f"{r.namespace}/{r.name}", r.reason, r.hint) for r in rows if not r.is_ready]
    troubled += [(f"clusterlarkapp/{c.name}", c.reason, c.hint) for c in clusters if not c.is_ready]
    if troubled:
        parts.append(
            "Not ready:\n" + "\n".join(f"  {who}: {why} — {hint}" for who, why, hint in troubled)
        )
    return "\n\n".join(parts)


def status_json(rows: Sequence[Row], clusters: Sequence[ClusterRow] = ()) -> dict[str, Any]:
    def item(r: Row | ClusterRow) -> dict[str, Any]:
        return {**asdict(r), "hint": None if r.is_ready else r.hint}

    every: Sequence[Row | ClusterRow] = [*rows, *clusters]
    return {
        "items": [item(r) for r in rows],
        "clusterLarkApps": [item(c) for c in clusters],
        "ready": all(r.is_ready for r in every),
    }


# --- describe -----------------------------------------------------------------------------
def _fields(pairs: Sequence[tuple[str, Any]], indent: str = "") -> list[str]:
    shown = [(k, v) for k, v in pairs if v not in (None, "")]
    width = max((len(k) for k, _ in shown), default=0) + 2
    return [f"{indent}{(k + ':').ljust(width)}{v}" for k, v in shown]


def describe(obj: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: dt.datetime) -> str:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    r = row(obj, now)
    lines = _fields(
        [
            ("Name", meta["name"]),
            ("Namespace", meta.get("namespace")),
            ("App ID", spec.get("appId")),
            ("ClusterLarkApp", (spec.get("appRef") or {}).get("name")),
            ("Domain", None if spec.get("appRef") else spec.get("domain", "feishu")),
            ("Suspended", "yes" if spec.get("suspend") else None),
            ("App Type", spec.get("appType")),
            ("Phase", r.phase),
            ("Ready", r.ready if r.is_ready else f"{r.ready} ({r.reason})"),
            ("App Available", r.available),
            ("Consecutive Failures", status.get("consecutiveFailures")),
            ("Hint", None if r.is_ready else r.hint),
        ]
    )
    lines += ["", "Conditions (oldest transition first):", *_timeline(obj, now)]
    lines += ["", "Token:", *_token(status.get("token"), now)]
    if status.get("store"):
        lines += ["", "Store App:", *_store(status["store"], now)]
    lines += ["", "Probes:", *_probes(status.get("probes"), spec, now)]
    if status.get("lastError"):
        lines += ["", "Last Error:", *_last_error(status["lastError"], now)]
    lines += ["", "Events (oldest first):", *_events(events, now)]
    return "\n".join(lines)


def _timeline(obj: Mapping[str, Any], now: dt.datetime) -> list[str]:
    conds = list(((obj.get("status") or {}).get("conditions")) or [])
    if not conds:
        return [f"  <none>  ({NOT_RECONCILED_HINT})"]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    conds.sort(key=lambda c: (parse_time(c.get("lastTransitionTime")) or epoch, c.get("type")))
    rows = [("  LAST TRANSITION", "AGE", "TYPE", "STATUS", "REASON", "MESSAGE")]
    hints: dict[int, str] = {}
    for c in conds:
        when = parse_time(c.get("lastTransitionTime"))
        rows.append(
            (
                "  " + str(c.get("lastTransitionTime") or "-"),
                relative(when, now),
                str(c.get("type")),
                str(c.get("status")),
                str(c.get("reason", "")),
                strip_hint(str(c.get("message", ""))),
            )
        )
        if c.get("status") != "True" and c.get("reason") not in (None, "", "Pending"):
            hints[len(rows) - 1] = hint_for(str(c["reason"]))
    out = []
    for i, text in enumerate(table(rows).splitlines()):
        out.append(text)
        if i in hints:
            out.append(f"      hint: {hints[i]}")
    return out


def _token(token: Mapping[str, Any] | None, now: dt.datetime) -> list[str]:
    if not token:
        return ["  <no token yet>"]
    expires = parse_time(token.get("expiresAt"))
    nxt = parse_time(token.get("nextRefreshAt"))
    left = countdown(expires, now)
    return _fields(
        [
            ("Secret", token.get("secretName")),
            (
                "Expires At",
                f"{token.get('expiresAt')} ({left if left == 'EXPIRED' else 'in ' + left})",
            ),
            ("Refreshed At", _when(token.get("refreshedAt"), now)),
            ("Next Refresh At", _when(token.get("nextRefreshAt"), now) if nxt else None),
            ("Fingerprint", token.get("fingerprint")),
        ],
        indent="  ",
    )


def _store(store: Mapping[str, Any], now: dt.datetime) -> list[str]:
    return _fields(
        [
            ("Last Ticket", _when(store.get("ticketReceivedAt"), now) or "<none yet>"),
            (
                "Tenants",
                f"{store.get('tenantsReady', 0)}/{store.get('tenants', 0)} ready, "
                f"{store.get('tenantsFailing', 0)} failing",
            ),
            ("Earliest Tenant Expiry", _when(store.get("earliestTenantExpiresAt"), now)),
        ]
    )


def _when(text: Any, now: dt.datetime) -> str | None:
    if not text:
        return None
    return f"{text} ({relative(parse_time(text), now)})"


def _probes(
    probes: Mapping[str, Any] | None, spec: Mapping[str, Any], now: dt.datetime
) -> list[str]:
    configured = [d for d in DEPENDENCIES if (spec.get("probes") or {}).get(d) is not None]
    if not configured:
        return ["  <none configured>"]
    out = []
    for dep in configured:
        p = (probes or {}).get(dep)
        if not p:
            out.append(f"  {dep.label}: not probed yet")
            continue
        health = "healthy" if p.get("healthy") else "UNHEALTHY"
        latency = f", {p['latencyMs']:g}ms" if p.get("latencyMs") is not None else ""
        checked = f", checked {relative(parse_time(p.get('checkedAt')), now)}"
        out.append(f"  {dep.label}: {health} ({p.get('reason')}{latency}{checked})")
        if p.get("message"):
            out.append(f"    {p['message']}")
        for key, value in sorted((p.get("details") or {}).items()):
            out.append(f"    {key}: {value}")
        if not p.get("healthy"):
            out.append(f"    hint: {hint_for(str(p.get('reason')))}")
    return out


def _last_error(err: Mapping[str, Any], now: dt.datetime) -> list[str]:
    return _fields(
        [
            ("Reason", err.get("reason")),
            ("Code", err.get("code")),
            ("Message", err.get("message")),
            ("At", _when(err.get("at"), now)),
            ("Hint", err.get("hint") or hint_for(str(err.get("reason")))),
        ],
        indent="  ",
    )


def _events(events: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[str]:
    if not events:
        return ["  <none>"]
    rows = [("  TYPE", "REASON", "AGE", "FROM", "MESSAGE")]
    for e in events:
        when = parse_time(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
        count = int(e.get("count") or 1)
        age = relative(when, now) + (f" (x{count})" if count > 1 else "")
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or "-"
        rows.append(
            ("  " + str(e.get("type")), str(e.get("reason")), age, source, str(e.get("message")))
        )
    return table(rows).splitlines()
