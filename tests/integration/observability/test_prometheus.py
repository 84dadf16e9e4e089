"""Prometheus in the loop: a real operator, a real apiserver, the emulator, a real Redis and
a real Prometheus (Debian package) that scrapes the operator every second and loads
charts/lark-operator/files/alerts.yaml. Every alert expression and every dashboard query is
then evaluated through the HTTP API.

What "works" means here, honestly:
- Dashboard queries: each parses and returns at least one series; the latency quantiles
  return at least one number (not NaN), which needs observations between two scrapes.
- Alert expressions: each parses. An alert condition is rightly empty for a healthy
  LarkApp, so emptiness alone proves nothing either way. Instead (1) every metric selector
  inside every expression, matchers included (`lark_service_reconciles_total{result="error"}`),
  must return series: the scenario below produces each of them for real (a wrong secret,
  an unreachable Redis, a 429, a 500, a token Secret the operator may not overwrite, a
  suspended LarkApp); and (2) the whole expression must be non-empty exactly for the
  alerts this scenario provokes and empty for the others, e.g. no token alert for the
  healthy LarkApps. Alerts with `for:` are then seen pending in /api/v1/alerts with the
  right LarkApp and their reason looked up by the annotation template.
- /api/v1/rules: every rule of the file loaded, evaluated, health "ok".
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import procs
from tests.helpers import dashboard as dash
from tests.helpers.wait import eventually
from tests.integration.observability.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "charts" / "lark-operator" / "files" / "alerts.yaml"

OK_APP, OK_SECRET = "cli_obsok01", "obs-ok-secret-value-1"
BAD_APP, BAD_SECRET = "cli_obsbad01", "obs-bad-secret-value-1"
RL_APP, RL_SECRET = "cli_obsrl01", "obs-rl-secret-value-1"
# A store app: its ticket pushed over loopback to the operator's events port.
STORE_APP, STORE_SECRET = "cli_obsstore01", "obs-store-secret-value-1"
STORE_KEY, STORE_TOKEN = "obs-store-encrypt-key", "obs-store-verification-token"

# Alert conditions this scenario makes true (pending, as all have `for:` or need time), and
# the LarkApp/labels each must name; every other alert's condition must be empty.
EXPECTED_ACTIVE = {
    "LarkCredentialsInvalid": [{"name": "wrong"}],
    "LarkDependencyDown": [{"name": "wrong", "dependency": "redis"}],
    # clash: its token Secret cannot be written, so its refresh counts as failing too
    "LarkTokenRefreshFailing": [{"name": "clash"}],
    "LarkReconcileErrors": [{"job": "lark-operator"}],
    "LarkRateLimited": [{"job": "lark-operator"}],
}
SELECTOR = re.compile(r"\b(?:lark_service_[a-z_]+|up)\b(?:\{[^}]*\})?")


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def selectors(expr: str) -> set[str]:
    """The metric selectors of a PromQL expression (`name` or `name{matchers}`), not the
    label names after by/on/without."""
    stripped = re.sub(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return {m.group(0) for m in SELECTOR.finditer(stripped)}


def test_alerts_and_dashboard_against_real_prometheus(
    kube: Any,
    namespace: str,
    emulator_factory: Any,
    operator_factory: Any,
    prometheus_factory: Any,
    redis_server: Any,
) -> None:
    started = time.monotonic()
    ns = namespace
    events_port = procs.free_port()
    emu = emulator_factory(
        {OK_APP: OK_SECRET, BAD_APP: BAD_SECRET, RL_APP: RL_SECRET},
        store_apps=[f"{STORE_APP}:{STORE_SECRET}:{STORE_KEY}:{STORE_TOKEN}"],
        tenants=[f"{STORE_APP}:obs-tenant-1"],
        event_url=f"http://127.0.0.1:{events_port}/lark/events",
    )
    kube.put_secret(ns, "store-secret", {"appSecret": STORE_SECRET})
    kube.put_secret(ns, "store-keys", {"encryptKey": STORE_KEY, "verificationToken": STORE_TOKEN})
    kube.put_secret(ns, "ok-secret", {"appSecret": OK_SECRET})
    kube.put_secret(ns, "wrong-secret", {"appSecret": "not-the-app-secret"})
    kube.put_secret(ns, "rl-secret", {"appSecret": RL_SECRET})
    kube.put_secret(ns, "redis-up", {"url": redis_server.url})
    kube.put_secret(ns, "redis-down", {"url": f"redis://127.0.0.1:{procs.free_port()}/0"})
    # Someone else's immutable Secret where LarkApp "clash" wants its token Secret: the
    # apiserver refuses every write (422), so reconciles fail for real.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "taken", "namespace": ns},
            "immutable": True,
            "stringData": {"owner": "somebody else"},
        }
    )
    # A client-side bucket of 1 call at 5/s, so that simultaneous calls wait locally too.
    op = operator_factory(
        [ns],
        allowed=[emu.url],
        env={"LARK_OPERATOR_API_RATE": "5", "LARK_OPERATOR_API_BURST": "1"},
        events_port=events_port,
        extra=["--cluster-resource-namespace", ns],
    )
    prom: Prometheus = prometheus_factory([f"127.0.0.1:{op.health_port}"], [ALERTS])
    eventually(lambda: prom.query('up{job="lark-operator"} == 1'), 20, what="first scrape")

    def spec(app_id: str, secret: str, **extra: Any) -> dict[str, Any]:
        return {"appId": app_id, "appSecretRef": {"name": secret}, "domain": emu.url, **extra}

    def redis_probe(secret: str) -> dict[str, Any]:
        return {"interval": "5s", "timeout": "2s", "redis": {"urlSecretRef": {"name": secret}}}

    # healthy + twin: same app, created together while the platform is slow: one upstream
    # call, the other joins it (single-flight).
    emu.fault(app_id=OK_APP, latency_ms=1500, count=1)
    kube.create_larkapp(ns, "healthy", spec(OK_APP, "ok-secret", probes=redis_probe("redis-up")))
    kube.create_larkapp(ns, "twin", spec(OK_APP, "ok-secret"))
    # wrong: a wrong App Secret (10014) and a Redis nobody listens on.
    kube.create_larkapp(
        ns, "wrong", spec(BAD_APP, "wrong-secret", probes=redis_probe("redis-down"))
    )
    # limited: a 429 with x-ogw-ratelimit-reset (an upstream wait), then a 500, then a token.
    emu.fault(app_id=RL_APP, http_status=429, ratelimit_reset=1, count=1)
    emu.fault(app_id=RL_APP, http_status=500, count=1)
    kube.create_larkapp(ns, "limited", spec(RL_APP, "rl-secret"))
    # parked: suspended.
    kube.create_larkapp(ns, "parked", spec(OK_APP, "ok-secret", suspend=True))
    # shop: a store app with one tenant (ticket via resend, callbacks, store metrics).
    store = {
        "encryptKeyRef": {"name": "store-keys"},
        "verificationTokenRef": {"name": "store-keys"},
        "tenants": {"keys": ["obs-tenant-1"]},
    }
    kube.create_larkapp(ns, "shop", spec(STORE_APP, "store-secret", appType="Store", store=store))

    def cond(name: str, ctype: str) -> tuple[str, str] | None:
        c = kube.condition(ns, name, ctype)
        return (c["status"], c["reason"]) if c else None

    eventually(lambda: cond("healthy", "Ready") == ("True", "Ready"), 30, what="healthy Ready")
    eventually(lambda: cond("twin", "TokenReady") == ("True", "Issued"), 20, what="twin token")
    eventually(lambda: cond("limited", "TokenReady") == ("True", "Issued"), 20, what="limited")
    eventually(lambda: cond("wrong", "CredentialsValid") == ("False", "InvalidCredentials"), 20)
    eventually(lambda: cond("wrong", "RedisHealthy") == ("False", "Unreachable"), 20)
    eventually(lambda: cond("parked", "Ready") == ("False", "Suspended"), 20, what="parked")
    eventually(lambda: cond("shop", "Ready") == ("True", "Ready"), 30, what="store app Ready")
    eventually(lambda: cond("healthy", "AppAvailable") == ("True", "Available"), 20)
    # clash: its token comes from the shared cache (healthy fetched it), its Secret write fails.
    kube.create_larkapp(ns, "clash", spec(OK_APP, "ok-secret", target={"secretName": "taken"}))
    # A forced refresh once Prometheus has seen the latency histogram: an observation
    # between two scrapes, so that the quantiles have a rate to work on.
    eventually(lambda: prom.query("lark_service_api_call_duration_seconds_count"), 15)
    kube.patch_larkapp(
        ns, "healthy", {"metadata": {"annotations": {"larkservice.io/refresh-requested-at": "1"}}}
    )

    # --- every selector in every alert expression returns series ------------------------
    rules = alert_rules()
    wanted = sorted({s for r in rules for s in selectors(r["expr"])})
    assert "lark_service_build_info" in wanted and "up" in wanted

    def missing_selectors() -> list[str]:
        return [s for s in wanted if not prom.query(s)]

    eventually(lambda: not missing_selectors() or None, 40, what="every alert selector")

    # --- every dashboard query parses and returns series; quantiles return numbers -------
    queries = dash.queries()
    assert len(queries) >= 20

    def dashboard_gaps() -> list[str]:
        gaps = []
        for q in queries:
            result = prom.query(q.promql)
            if not result:
                gaps.append(f"{q.where}: no series for {q.promql}")
            elif "histogram_quantile" in q.promql and all(
                math.isnan(float(r["value"][1])) for r in result
            ):
                gaps.append(f"{q.where}: only NaN for {q.promql}")
        return gaps

    try:
        eventually(lambda: not dashboard_gaps() or None, 30, what="every dashboard query")
    except AssertionError:
        raise AssertionError("\n".join(dashboard_gaps())) from None

    # The scenario did what it is for: a join, a cache hit, an upstream wait, a reconcile
    # error (a local wait is likely but depends on timing, so it is not required).
    for proof in (
        "lark_service_singleflight_joins_total > 0",
        "lark_service_token_cache_hits_total > 0",
        'lark_service_rate_limit_waits_total{source="upstream"} > 0',
        'lark_service_reconciles_total{result="error"} > 0',
    ):
        assert prom.query(proof), proof

    # No secret in any label of any series Prometheus stored from the operator.
    token = (kube.secret(ns, "healthy-lark-token") or {}).get("tenant_access_token")
    assert token
    secrets = [OK_SECRET, BAD_SECRET, RL_SECRET, "not-the-app-secret", token]
    secrets += [STORE_SECRET, STORE_KEY, STORE_TOKEN]
    secrets.append(redis_server.password)
    stored = prom.api("series", **{"match[]": '{__name__=~"lark_service_.+"}'})
    assert len(stored) > 50
    labels = " ".join(v for series in stored for v in series.values())
    assert not [s for s in secrets if s and s in labels], "a secret reached a metric label"

    # --- every alert expression parses; non-empty exactly for the provoked alerts --------
    def active() -> dict[str, list[dict[str, str]]]:
        return {r["alert"]: [s["metric"] for s in prom.query(r["expr"])] for r in rules}

    def matches_expectation() -> bool:
        got = active()
        for alert, series in got.items():
            want = EXPECTED_ACTIVE.get(alert, [])
            if len(series) != len(want):
                return False
            for labels in want:
                if not any(all(s.get(k) == v for k, v in labels.items()) for s in series):
                    return False
        return True

    try:
        eventually(matches_expectation, 20, what="alert conditions")
    except AssertionError:
        raise AssertionError(f"alert conditions: {active()}") from None
    for series in active()["LarkCredentialsInvalid"] + active()["LarkDependencyDown"]:
        assert series["namespace"] == ns  # the LarkApp's namespace, not a target label

    # --- rules loaded and healthy; the provoked alerts are pending with rendered texts ---
    def rule_states() -> dict[str, dict[str, Any]]:
        groups = prom.api("rules")["groups"]
        return {r["name"]: r for g in groups for r in g["rules"]}

    states = eventually(
        lambda: (
            (s := rule_states())
            and all(r["lastEvaluation"][:4] != "0001" for r in s.values())
            and s
        ),
        10,
        what="rules evaluated",
    )
    assert set(states) == {r["alert"] for r in rules}
    for name, r in states.items():
        assert r["health"] == "ok", (name, r.get("lastError"))

    pending = {
        (a["labels"]["alertname"], a["labels"].get("name"), a["labels"].get("dependency")): a
        for a in prom.api("alerts")["alerts"]
    }
    creds = pending[("LarkCredentialsInvalid", "wrong", None)]
    assert creds["state"] == "pending"
    assert creds["annotations"]["summary"] == (
        f"LarkApp {ns}/wrong: credentials invalid (InvalidCredentials)"
    )
    redis = pending[("LarkDependencyDown", "wrong", "redis")]
    assert redis["annotations"]["summary"] == f"LarkApp {ns}/wrong: redis unhealthy (Unreachable)"
    assert not [k for k in pending if k[1] in ("healthy", "twin", "limited", "parked", "shop")]

    # --- the operator's own view agrees, and the scrape target is healthy ---------------
    targets = prom.api("targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets
    assert prom.query(
        f'lark_service_condition_reason{{namespace="{ns}",name="parked",'
        f'type="Ready",reason="Suspended"}} == 1'
    )

    code = prom.stop()
    assert code == 0, f"prometheus did not shut down cleanly ({code}):\n{prom.log()}"
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"took {elapsed:.0f}s"
