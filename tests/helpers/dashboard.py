"""The Grafana dashboard's queries, as PromQL a plain Prometheus can run: shared by the
unit test (structure, metric names) and the integration test (evaluated in Prometheus)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "lark-operator" / "files" / "dashboard.json"

# Grafana's built-in interval variables, as a dashboard at "last 6 hours" with a 1s scrape
# would resolve them closely enough for a query to be valid and find data.
BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
# Multi-value query variables select everything with their allValue.
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    where: str  # panel title / refId, or "variable <name>"
    expr: str  # as written in the dashboard
    promql: str  # with variables substituted, runnable in Prometheus


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for p in (dashboard or load())["panels"]:
        yield p
        yield from p.get("panels", [])


def variables(dashboard: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in (dashboard or load())["templating"]["list"]}


def substitute(expr: str, dashboard: dict[str, Any] | None = None) -> str:
    values = dict(BUILTINS)
    for name, var in variables(dashboard).items():
        if var["type"] == "query":
            values[name] = var.get("allValue") or ".*"

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    # ${name} and $name (longest identifier, so $namespace is never read as $name + "space")
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def queries(dashboard: dict[str, Any] | None = None) -> list[Query]:
    """Every target expr of every panel, and every query variable (label_values(sel, l)
    becomes `count by (l) (sel)`, the series Grafana would read the values from)."""
    dashboard = dashboard or load()
    out = []
    for p in panels(dashboard):
        for t in p.get("targets", []):
            where = f"{p['title']} / {t['refId']}"
            out.append(Query(where, t["expr"], substitute(t["expr"], dashboard)))
    for name, var in variables(dashboard).items():
        if var["type"] != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = LABEL_VALUES.match(q.strip())
        assert m, f"variable {name}: only label_values(...) queries are supported, got {q!r}"
        selector = m.group("selector") or "up"
        promql = f"count by ({m.group('label')}) ({substitute(selector, dashboard)})"
        out.append(Query(f"variable {name}", q, promql))
    return out
