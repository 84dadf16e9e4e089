"""The Dockerfile, .dockerignore, kind-config.yaml and the Makefile's kind/deploy targets
agree with the chart. No Docker engine runs here, so the image itself is not built by the
tests; these checks keep the files consistent with each other."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.procs import free_port
from tests.helpers.procs import http_json
from tests.helpers.wait import eventually
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


def test_the_image_context_leaves_the_dev_tooling_out() -> None:
    """hack/ (the local control plane, the server launchers) never reaches the image: the
    build context does not let it in and no stage copies it."""
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert not [r for r in rules if r.strip().startswith("!") and "hack" in r]
    copied = [line for stage in _stages() for line in stage if line.upper().startswith("COPY")]
    assert copied and not [line for line in copied if "hack" in line]


def _builder_context(dest: Path) -> None:
    """Copy what the Dockerfile's builder stage copies from the build context (the image's
    wheel is built from exactly these paths), keeping symlinks."""
    builder = _stages()[0]
    for line in builder:
        words = line.split()
        if words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for src in words[1:-1]:
            path = REPO / src
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
                shutil.copytree(path, dest / src, symlinks=True, ignore=ignore)
            else:
                shutil.copy2(path, dest / src)


@pytest.fixture(scope="module")
def image_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lark-operator wheel as the image's builder stage builds it, unpacked."""
    root = tmp_path_factory.mktemp("wheel")
    src, out, unpacked = root / "src", root / "dist", root / "unpacked"
    src.mkdir()
    _builder_context(src)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("lark_operator-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    return unpacked


def _wheel_argv(wheel: Path, *argv: str) -> list[str]:
    """`lark-operator ARGV` from the unpacked wheel with this venv's dependencies but without
    its editable installs (-S: no .pth files, so neither the source tree nor lark_devenv):
    what an installed wheel, and the image, have."""
    boot = (
        "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
        "from lark_operator.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    site_packages = sysconfig.get_paths()["purelib"]
    return [sys.executable, "-S", "-c", boot, str(wheel), site_packages, *argv]


def _from_wheel(wheel: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _wheel_argv(wheel, *argv), capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_the_wheel_ships_the_emulator_and_not_the_dev_tooling(image_wheel: Path) -> None:
    modules = {
        str(p.relative_to(image_wheel).with_suffix("")).replace("/", ".")
        for p in image_wheel.rglob("*.py")
    }
    assert not {m for m in modules if "devenv" in m or "controlplane" in m}, modules
    assert not (image_wheel / "lark_devenv").exists()
    for needed in (
        "lark_operator.emulator.server",
        "lark_operator.emulator.runner",
        "lark_operator.cli.emulator",
        "lark_operator.cli.dev",
    ):
        assert needed in modules
    assert (image_wheel / "lark_operator" / "crds" / "larkapps.yaml").is_file()
    metadata = next(image_wheel.glob("lark_operator-*.dist-info")) / "METADATA"
    requires = [line for line in metadata.read_text().splitlines() if "Requires-Dist" in line]
    # cryptography is there for the events endpoint (AES of store-app callbacks), nothing dev.
    assert [r for r in requires if "cryptography" in r], requires
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if "devenv" in r or "kubernetes" in r], runtime


def test_dev_from_the_wheel_says_it_needs_a_source_checkout(
    image_wheel: Path, tmp_path: Path
) -> None:
    probe = _from_wheel(image_wheel, tmp_path, "--version")
    assert probe.returncode == 0, probe.stderr
    absent = subprocess.run(
        [sys.executable, "-S", "-c", "import lark_devenv"], capture_output=True, cwd=tmp_path
    )
    assert absent.returncode != 0, "the check below means nothing if lark_devenv imports"
    for action in ("up", "down", "status"):
        proc = _from_wheel(image_wheel, tmp_path, "dev", action, "--dir", str(tmp_path / "d"))
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "source checkout" in lines[0] and "make dev-up" in lines[0]
        assert proc.stdout == ""
    assert not (tmp_path / "d").exists()


def test_the_emulator_runs_from_the_wheel(image_wheel: Path, tmp_path: Path) -> None:
    """The e2e test runs the emulator in a pod from the image: it must not need hack/."""
    port = free_port()
    argv = _wheel_argv(image_wheel, "emulator", "--port", str(port), "--app", "cli_wheel:s3cret")
    log = tmp_path / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/open-apis/auth/v3/tenant_access_token/internal"

    def issue() -> dict[str, Any] | None:
        if proc.poll() is not None:  # not an AssertionError: eventually() would retry it
            raise RuntimeError(f"the emulator exited:\n{log.read_text(errors='replace')}")
        try:
            return dict(http_json(url, "POST", {"app_id": "cli_wheel", "app_secret": "s3cret"}))
        except OSError:
            return None

    try:
        issued = eventually(issue, timeout=30, what="a token from the emulator")
        assert issued["code"] == 0 and issued["tenant_access_token"]
    finally:
        proc.terminate()
        proc.wait(10)
