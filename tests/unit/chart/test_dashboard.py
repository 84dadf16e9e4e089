"""The Grafana dashboard (charts/lark-operator/files/dashboard.json): structure Grafana needs,
a `${datasource}` variable everywhere, and queries over metrics the operator exports. That
every query parses and finds data in a real Prometheus is
tests/integration/observability/test_prometheus.py."""

from __future__ import annotations

import re

from tests.helpers import dashboard as dash
from tests.helpers.metrics_registry import families, series_names

DS = {"type": "prometheus", "uid": "${datasource}"}


def test_datasource_is_a_template_variable() -> None:
    d = dash.load()
    var = dash.variables(d)["datasource"]
    assert var["type"] == "datasource" and var["query"] == "prometheus"
    for p in dash.panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"] == DS, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS, (p["title"], t["refId"])
    for var in dash.variables(d).values():
        if var["type"] == "query":
            assert var["datasource"] == DS, var["name"]


def test_layout_is_well_formed() -> None:
    d = dash.load()
    assert d["uid"] == "lark-operator" and d["title"]
    ids = [p["id"] for p in dash.panels(d)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in dash.panels(d):
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"], f"panel {p['title']!r} has no query"
            assert p.get("description"), f"panel {p['title']!r} has no description"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]


def test_queries_use_only_exported_metrics() -> None:
    known = series_names()
    for q in dash.queries():
        used = set(re.findall(r"\blark_service_[a-z_]+", q.expr))
        assert used, f"{q.where}: no operator metric in {q.expr!r}"
        assert used <= set(known), f"{q.where}: unknown metric(s) {used - set(known)}"


def test_every_metric_has_a_panel() -> None:
    """A metric added to metrics.py without a panel fails here: add one to dashboard.json."""
    text = " ".join(q.expr for q in dash.queries())
    known = series_names()
    shown = {known[n] for n in re.findall(r"\blark_service_[a-z_]+", text) if n in known}
    missing = set(families()) - shown
    assert not missing, f"metrics with no dashboard panel: {sorted(missing)}"


def test_variables_substitute() -> None:
    q = dash.substitute(
        'rate(x{namespace=~"$namespace", name=~"${name}"}[$__rate_interval])', dash.load()
    )
    assert q == 'rate(x{namespace=~".*", name=~".*"}[1m])'
    for query in dash.queries():
        assert "$" not in query.promql, query
