"""The alerting rules (charts/lark-operator/files/alerts.yaml), checked by promtool:
syntax, and unit tests (promtool/*.yaml) in which every alert fires in its case and stays
quiet in another. promtool is the Debian package `prometheus`; without it these tests fail
(they are the only proof the rules work), they are never skipped."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.metrics_registry import series_names

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "charts" / "lark-operator" / "files" / "alerts.yaml"
PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.yaml"))
ALERTS_DOC = REPO / "docs" / "alerts.md"
RUNBOOK_BASE = "https://github.com/lark-operator/lark-operator/blob/main/docs/alerts.md#"
SEVERITIES = {"critical", "warning"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install the Debian package `prometheus` "
            "(apt-get update && apt-get install -y prometheus), which ships /usr/bin/promtool"
        )
    return path


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def alert_names() -> list[str]:
    return [r["alert"] for r in rules() if "alert" in r]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_promtool_check_rules() -> None:
    proc = run("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    assert PROMTOOL_TESTS, "no promtool unit tests found"
    proc = run("test", "rules", *map(str, PROMTOOL_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(PROMTOOL_TESTS), proc.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests are not vacuous: with each alert's threshold comparison inverted,
    promtool reports failures for it."""
    broken = ALERTS.read_text().replace("- time() < 300", "- time() < 900")
    broken = broken.replace("== 1\n          unless", "== 0\n          unless", 1)
    assert broken != ALERTS.read_text()
    (tmp_path / "alerts.yaml").write_text(broken)
    failed = 0
    for test in PROMTOOL_TESTS:
        text = test.read_text().replace(
            "../../../../charts/lark-operator/files/alerts.yaml", str(tmp_path / "alerts.yaml")
        )
        (tmp_path / test.name).write_text(text)
        proc = run("test", "rules", str(tmp_path / test.name))
        failed += proc.returncode != 0
    assert failed >= 2


def _unit_test_cases() -> list[tuple[str, bool]]:
    """(alertname, fires) for every alert_rule_test case in the promtool files."""
    cases = []
    for path in PROMTOOL_TESTS:
        doc = yaml.safe_load(path.read_text())
        for t in doc["tests"]:
            for case in t.get("alert_rule_test", []):
                cases.append((case["alertname"], bool(case.get("exp_alerts"))))
    return cases


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_is_shown_firing_and_quiet(alert: str) -> None:
    cases = _unit_test_cases()
    assert (alert, True) in cases, f"no promtool test shows {alert} firing"
    assert (alert, False) in cases, f"no promtool test shows {alert} staying quiet"


def test_unit_tests_name_only_existing_alerts() -> None:
    unknown = {name for name, _ in _unit_test_cases()} - set(alert_names())
    assert not unknown, f"promtool tests name alerts that do not exist: {unknown}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert", r.get("record")))
def test_alert_metadata(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Lark[A-Z][A-Za-z]+", name)
    assert rule["labels"]["severity"] in SEVERITIES
    ann = rule["annotations"]
    assert set(ann) >= {"summary", "description", "runbook_url"}
    assert ann["runbook_url"] == RUNBOOK_BASE + name.lower()
    if re.search(r"by \(namespace, name", rule["expr"]):
        # Per-LarkApp alerts name the LarkApp in both texts.
        for key in ("summary", "description"):
            assert "{{ $labels.namespace }}/{{ $labels.name }}" in ann[key], (name, key)


def test_runbook_anchors_exist_in_docs() -> None:
    headings = {
        m.group(1).strip().lower()
        for m in re.finditer(r"^##+\s+(.+)$", ALERTS_DOC.read_text(), re.M)
    }
    missing = [a for a in alert_names() if a.lower() not in headings]
    assert not missing, f"docs/alerts.md has no section for {missing}"


def test_alert_expressions_use_only_exported_metrics() -> None:
    known = series_names()
    used = set()
    for r in rules():
        used |= set(re.findall(r"\blark_service_[a-z_]+", r["expr"]))
    assert used, "no operator metric used"
    assert not used - set(known), (
        f"alerts use metrics the operator does not export: {used - set(known)}"
    )
