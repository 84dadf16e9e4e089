"""docs/gitops/argocd-health.lua, run by a real Lua 5.1 as Argo CD runs a health check from
argocd-cm (base and table libraries only): the test cases in Argo CD's own layout
(docs/gitops/health_test.yaml + testdata/), then every state of tests/helpers/gitops_cases
as the operator's status code writes it today."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.gitops_cases import CASES, Case, larkapp
from tests.integration.gitops.conftest import GITOPS_DOCS

pytestmark = pytest.mark.integration

SCRIPT = GITOPS_DOCS / "argocd-health.lua"
SANDBOX = Path(__file__).with_name("argocd_sandbox.lua")
HEALTH_TESTS = yaml.safe_load((GITOPS_DOCS / "health_test.yaml").read_text())["tests"]
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def to_lua(value: Any) -> str:
    """A Lua literal of a decoded JSON/YAML value, as Argo CD hands objects to Lua (null
    dropped, lists as sequences)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            ch if ch.isprintable() and ch not in '"\\' else f"\\{ord(ch):03d}" for ch in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        assert None not in value, "Argo CD would drop a null list item"
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        items = (f"[{to_lua(str(k))}] = {to_lua(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def health(lua: str, obj: dict[str, Any], tmp_path: Path, script: Path = SCRIPT) -> tuple[str, str]:
    path = tmp_path / f"object-{id(obj)}.lua"
    path.write_text("return " + to_lua(obj) + "\n")
    proc = subprocess.run(
        [lua, str(SANDBOX), str(script), str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    status, _, message = proc.stdout.partition("\n")
    return status, message


def test_the_sandbox_has_what_argocd_gives_and_nothing_more(lua: str, tmp_path: Path) -> None:
    """A script using the string library would run here but fail in Argo CD: the sandbox
    refuses it, so the cases below prove the script runs there."""
    for body in ('return {status = string.format("%s", "x")}', 'return {status = ("x"):upper()}'):
        script = tmp_path / "uses-string.lua"
        script.write_text(body)
        proc = subprocess.run(
            [lua, str(SANDBOX), str(script), str(SCRIPT)],  # any readable Lua as the object
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0, body


@pytest.mark.parametrize("test", HEALTH_TESTS, ids=lambda t: Path(t["inputPath"]).stem)
def test_health_test_yaml(test: dict[str, Any], lua: str, tmp_path: Path) -> None:
    obj = yaml.safe_load((GITOPS_DOCS / test["inputPath"]).read_text())
    expected = test["healthStatus"]
    assert expected["status"] in ARGO_STATUSES
    assert health(lua, obj, tmp_path) == (expected["status"], expected["message"])


def test_every_testdata_file_is_a_case() -> None:
    used = {Path(t["inputPath"]).name for t in HEALTH_TESTS}
    assert used == {p.name for p in (GITOPS_DOCS / "testdata").glob("*.yaml")}
    kinds = {yaml.safe_load((GITOPS_DOCS / "testdata" / name).read_text())["kind"] for name in used}
    assert kinds == {"LarkApp", "ClusterLarkApp"}
    assert {t["healthStatus"]["status"] for t in HEALTH_TESTS} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_state_the_operator_writes(case: Case, lua: str, tmp_path: Path) -> None:
    obj = larkapp(case)
    status, message = health(lua, obj, tmp_path)
    assert status == case.argocd, message
    assert message
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    if status == "Degraded":  # says why and what to do, as the operator put it
        assert message == f"{case.stalled}: {conds['Stalled']['message']}"
    if case.reconciling and case.generation == obj["status"]["observedGeneration"]:
        assert message == f"{conds['Reconciling']['reason']}: {conds['Reconciling']['message']}"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"metadata": {"generation": 1}}, "Progressing"),  # just applied, no status yet
        ({"metadata": {"generation": 1}, "status": {"observedGeneration": 0}}, "Progressing"),
        ({"metadata": {}, "status": {"conditions": []}}, "Progressing"),
        ({"metadata": {"generation": 1}, "spec": {"suspend": True}}, "Suspended"),
    ],
)
def test_objects_the_operator_has_not_written_yet(
    obj: dict[str, Any], expected: str, lua: str, tmp_path: Path
) -> None:
    assert health(lua, {"kind": "LarkApp", **obj}, tmp_path)[0] == expected
