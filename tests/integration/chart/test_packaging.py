"""The Dockerfile, .dockerignore, kind-config.yaml and the Makefile's kind/deploy targets
agree with the chart. No Docker engine runs here, so the image itself is not built by the
tests; these checks keep the files consistent with each other."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from tests.integration.chart.conftest import CHART, REPO

pytestmark = pytest.mark.integration

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), one list per stage."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_runtime_stage_matches_the_chart() -> None:
    stages = _stages()
    assert len(stages) == 2, "a builder stage and a runtime stage"
    builder, runtime = stages
    assert builder[0].split()[1] == runtime[0].split()[1] == "${PYTHON_IMAGE}"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (REPO / "Dockerfile").read_text()
    by_op = {}
    for line in runtime:
        op, _, rest = line.partition(" ")
        by_op.setdefault(op.upper(), []).append(rest)
    uid = VALUES["securityContext"]["runAsUser"]
    assert by_op["USER"] == [f"{uid}:{uid}"]
    assert by_op["EXPOSE"] == [str(VALUES["healthPort"])]
    assert json.loads(by_op["ENTRYPOINT"][0]) == ["lark-operator"]
    assert json.loads(by_op["CMD"][0]) == ["run", "--all-namespaces", "--log-format", "json"]
    env = " ".join(by_op["ENV"])
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    # Only the venv comes from the builder; no package installs in the runtime stage.
    assert by_op["COPY"] == ["--from=builder /opt/venv /opt/venv"]
    runs = " ".join(by_op.get("RUN", []))
    for tool in ("apt-get", "pip ", "gcc", "build-essential"):
        assert tool not in runs, f"{tool} in the runtime stage"


def test_dockerignore_lets_the_crd_symlink_target_in() -> None:
    """operator/lark_operator/crds/larkapps.yaml -> ../../../crds/larkapps.yaml: without
    crds/ in the context the wheel would be built without the CRD."""
    link = REPO / "operator" / "lark_operator" / "crds" / "larkapps.yaml"
    assert link.is_symlink() and link.resolve() == (REPO / "crds" / "larkapps.yaml").resolve()
    rules = [
        r.strip()
        for r in (REPO / ".dockerignore").read_text().splitlines()
        if r.strip() and not r.startswith("#")
    ]
    assert rules[0] == "*"
    for needed in ("!pyproject.toml", "!README.md", "!crds/", "!operator/"):
        assert needed in rules
    copied = " ".join(line for stage in _stages() for line in stage if line.startswith("COPY"))
    for path in ("pyproject.toml", "README.md", "crds/", "operator/"):
        assert path in copied


def test_kind_config_is_one_control_plane_two_workers() -> None:
    cfg = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]


def test_makefile_deploy_sets_values_the_chart_has() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml" in makefile
    deploy = makefile.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    keys = re.findall(r"--set ([\w.]+)=", deploy)
    assert set(keys) == {"image.repository", "image.tag", "image.pullPolicy"}
    schema = json.loads((CHART / "values.schema.json").read_text())
    image = schema["properties"]["image"]["properties"]
    for key in keys:
        assert key.split(".")[1] in image
    assert "charts/lark-operator" in shlex.split(deploy.replace("\\\n", " "))[4:]
    assert "IfNotPresent" in image["pullPolicy"]["enum"]
