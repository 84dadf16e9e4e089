"""kubectl_plugin/render.py: the text kubectl lark prints (pure functions)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from lark_operator.cli import cluster
from lark_operator.cli.kubectl_plugin import render
from lark_operator.vocabulary.hints import hint_for
from tests.unit.cli.kubectl_plugin.larkapps import NOW, at, cond, larkapp

READY = larkapp(
    "good",
    [
        cond("Ready", "True", "Ready"),
        cond("TokenReady", "True", "Issued"),
        cond("AppAvailable", "True", "Available"),
    ],
    phase="Ready",
    token={
        "expiresAt": at(6720),
        "fingerprint": "sha256:abc",
        "secretName": "good-lark-token",
        "refreshedAt": at(-480),
        "nextRefreshAt": at(6000),
    },
)
DEGRADED = larkapp(
    "slow",
    [
        cond("Ready", "False", "Unreachable", "PostgreSQL: refused. Hint: do this", t=-10),
        cond("CredentialsValid", "True", "Valid", t=-300),
        cond("PostgresHealthy", "False", "Unreachable", "refused", t=-10),
        cond("RedisHealthy", "True", "Healthy", t=-300),
    ],
    phase="Degraded",
    token={"expiresAt": at(-5), "fingerprint": "sha256:def"},
)


# --- time -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (45, "45s"),
        (60, "1m"),
        (200, "3m20s"),
        (3600, "1h"),
        (6720, "1h52m"),
        (6759, "1h52m"),  # seconds dropped once there are hours
        (86400, "1d"),
        (2 * 86400 + 3 * 3600 + 59, "2d3h"),
    ],
)
def test_span(seconds: float, text: str) -> None:
    assert render.span(seconds) == text


def test_countdown() -> None:
    assert render.countdown(NOW + dt.timedelta(seconds=6720), NOW) == "1h52m"
    assert render.countdown(NOW, NOW) == "EXPIRED"
    assert render.countdown(NOW - dt.timedelta(hours=3), NOW) == "EXPIRED"
    assert render.countdown(None, NOW) == "-"


def test_relative_and_parse_time() -> None:
    assert render.relative(render.parse_time(at(300)), NOW) == "in 5m"
    assert render.relative(render.parse_time(at(-90)), NOW) == "1m30s ago"
    assert render.parse_time("not a time") is None
    assert render.parse_time(None) is None
    assert render.parse_time("2026-01-02T03:00:00.5Z") == NOW + dt.timedelta(seconds=0.5)


def test_strip_hint() -> None:
    assert render.strip_hint("Bad secret. Hint: fix it") == "Bad secret."
    assert render.strip_hint("no hint here") == "no hint here"


# --- status -----------------------------------------------------------------------------------
def test_status_table() -> None:
    fresh = larkapp("new", None)
    rows = [render.row(o, NOW) for o in (READY, DEGRADED, fresh)]
    text = render.status_text(rows, NOW)
    table, _, below = text.partition("\n\n")
    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
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
    ]
    assert [line.split() for line in lines[1:]] == [
        ["ns1", "good", "cli_good", "True", "Ready", "Available", "1h52m", "-", "-", "-"],
        [
            "ns1",
            "slow",
            "cli_slow",
            "False",
            "Degraded",
            "-",
            "EXPIRED",
            "Unreachable",
            "Healthy",
            "-",
        ],
        ["ns1", "new", "cli_new", "-", "-", "-", "-", "-", "-", "-"],
    ]
    # Columns line up: each cell starts where its header does.
    starts = [lines[0].index(h) for h in ("APP ID", "TOKEN EXPIRES IN", "RABBITMQ")]
    for line in lines[1:]:
        assert all(line[i - 1] == " " and line[i] != " " for i in starts)
    assert below.splitlines() == [
        "Not ready:",
        f"  ns1/slow: Unreachable — {hint_for('Unreachable')}",
        f"  ns1/new: NotReconciled — {render.NOT_RECONCILED_HINT}",
    ]


def test_status_all_ready_has_no_footer() -> None:
    text = render.status_text([render.row(READY, NOW)], NOW)
    assert "Not ready" not in text and len(text.splitlines()) == 2


def test_status_json() -> None:
    doc = render.status_json([render.row(READY, NOW), render.row(DEGRADED, NOW)])
    good, slow = doc["items"]
    assert doc["ready"] is False
    assert good["expires_in_seconds"] == 6720 and good["hint"] is None
    assert slow["message"] == "PostgreSQL: refused."  # the hint has its own field
    assert slow["hint"] == hint_for("Unreachable")
    assert slow["probes"] == {"postgres": "Unreachable", "redis": "Healthy", "rabbitmq": None}
    json.dumps(doc)


# --- describe ---------------------------------------------------------------------------------
def event(reason: str, t: float, type_: str = "Normal", message: str = "m") -> dict[str, Any]:
    return {
        "type": type_,
        "reason": reason,
        "message": message,
        "lastTimestamp": at(t),
        "source": {"component": "lark-operator"},
        "involvedObject": {"uid": "u-slow"},
    }


def test_describe_timeline_probes_error_and_events() -> None:
    obj = json.loads(json.dumps(DEGRADED))
    obj["spec"]["probes"] = {"postgres": {"dsnSecretRef": {"name": "db"}}, "redis": {}}
    obj["status"]["probes"] = {
        "postgres": {
            "healthy": False,
            "reason": "Unreachable",
            "latencyMs": 1.5,
            "checkedAt": at(-10),
            "message": "connection refused",
            "details": {"endpoint": "127.0.0.1:5432"},
        }
    }
    obj["status"]["lastError"] = {"reason": "Unreachable", "message": "boom", "at": at(-10)}
    events = [event("ProbeFailed", -10, "Warning"), event("TokenRefreshed", -300)]
    text = render.describe(obj, sorted(events, key=cluster.event_time), NOW)

    assert re.search(r"^Ready: +False \(Unreachable\)$", text, re.M)
    assert re.search(rf"^Hint: +{re.escape(hint_for('Unreachable'))}$", text, re.M)
    timeline = text.split("Conditions (oldest transition first):\n")[1].split("\n\n")[0]
    types = [
        line.split()[3]  # time, "10s", "ago", type
        for line in timeline.splitlines()[1:]
        if not line.strip().startswith("hint:")
    ]
    assert types == ["CredentialsValid", "RedisHealthy", "PostgresHealthy", "Ready"]
    assert timeline.count(f"hint: {hint_for('Unreachable')}") == 2  # Ready and Postgres
    assert "Hint: do this" not in timeline

    assert "  Expires At:  " + at(-5) + " (EXPIRED)" in text
    assert "  PostgreSQL: UNHEALTHY (Unreachable, 1.5ms, checked 10s ago)" in text
    assert "    endpoint: 127.0.0.1:5432" in text
    assert "  Redis: not probed yet" in text
    assert "  Hint:    " + hint_for("Unreachable") in text.split("Last Error:")[1]
    ev = text.split("Events (oldest first):\n")[1].splitlines()
    assert [line.split()[1] for line in ev[1:]] == ["TokenRefreshed", "ProbeFailed"]


def test_describe_ready_app_with_token() -> None:
    text = render.describe(READY, [], NOW)
    assert re.search(r"^Ready: +True$", text, re.M) and "Hint:" not in text
    assert "  Expires At:      " + at(6720) + " (in 1h52m)" in text
    assert "  Next Refresh At: " + at(6000) + " (in 1h40m)" in text
    assert "  Fingerprint:     sha256:abc" in text
    assert "Probes:\n  <none configured>" in text
    assert text.endswith("Events (oldest first):\n  <none>")


def test_describe_not_reconciled() -> None:
    text = render.describe(larkapp("new", None), [], NOW)
    assert render.NOT_RECONCILED_HINT in text
    assert "<no token yet>" in text


# --- ClusterLarkApps ----------------------------------------------------------------------------
SHARED = {
    "metadata": {"name": "shared"},
    "spec": {"appId": "cli_shared"},
    "status": {
        "conditions": [cond("Ready", "True", "Ready")],
        "token": {"expiresAt": at(3600), "fingerprint": "sha256:aaa"},
        "larkApps": 12,
        "refusedLarkApps": 1,
    },
}
BROKEN = {
    "metadata": {"name": "broken"},
    "spec": {"appId": "cli_broken"},
    "status": {
        "conditions": [cond("Ready", "False", "SecretNotFound", "Secret x not found. Hint: h")],
        "larkApps": 3,
    },
}


def test_status_shows_cluster_larkapps_and_what_uses_them() -> None:
    user = larkapp("user", [cond("Ready", "True", "Ready")], phase="Ready")
    user["spec"] = {"appRef": {"name": "shared"}}
    rows = [render.row(user, NOW)]
    clusters = [render.cluster_row(o, NOW) for o in (SHARED, BROKEN)]
    text = render.status_text(rows, NOW, clusters)
    larkapps, shared, below = text.split("\n\n")
    assert larkapps.splitlines()[1].split()[:3] == ["ns1", "user", "clusterlarkapp/shared"]
    lines = shared.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == list(render.CLUSTER_HEADER)
    assert lines[1].split() == ["shared", "cli_shared", "True", "Ready", "1h", "12", "1"]
    assert lines[2].split() == ["broken", "cli_broken", "False", "SecretNotFound", "-", "3", "0"]
    assert below.splitlines() == [
        "Not ready:",
        f"  clusterlarkapp/broken: SecretNotFound — {hint_for('SecretNotFound')}",
    ]
    doc = render.status_json(rows, clusters)
    assert doc["ready"] is False
    assert [c["name"] for c in doc["clusterLarkApps"]] == ["shared", "broken"]
    assert doc["clusterLarkApps"][1]["message"] == "Secret x not found."
    assert doc["clusterLarkApps"][1]["hint"] == hint_for("SecretNotFound")
    # Only LarkApps, as before: no empty second table.
    assert "CLUSTERLARKAPP" not in render.status_text(rows, NOW)


def test_describe_names_the_cluster_larkapp() -> None:
    user = larkapp("user", [cond("Ready", "True", "Ready")], phase="Ready")
    user["spec"] = {"appRef": {"name": "shared"}}
    text = render.describe(user, [], NOW)
    assert "ClusterLarkApp:" in text and "shared" in text
    assert "Domain" not in text and "App ID" not in text
