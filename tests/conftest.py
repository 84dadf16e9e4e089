"""Shared fixtures: the real control plane (session), a fresh namespace per test, the
emulator and the operator as real processes, and a scan for leaked secrets."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lark_devenv.controlplane import ControlPlane
from tests.fixtures.servers import *  # noqa: F403 - real PostgreSQL/Redis/RabbitMQ fixtures
from tests.helpers.env import Env
from tests.helpers.kube import Kube
from tests.helpers.procs import Emulator, Operator

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real kube-apiserver + etcd with the CRDs installed (or the current cluster with
    USE_EXISTING_CLUSTER=true)."""
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        Kube(path).kubectl("apply", "--server-side", "-f", str(CRDS))
        yield path
        return
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"), crds_dir=CRDS)
    cp.up(timeout=90)
    try:
        yield str(cp.kubeconfig)
    finally:
        cp.down()


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Kube:
    return Kube(kubeconfig)


@pytest.fixture
def namespace(kube: Kube) -> str:
    """A fresh namespace per test (left behind: an apiserver without controllers cannot
    finish deleting namespaces, and names never repeat)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[object]:
    started: list[Emulator] = []

    def make(apps: dict[str, str], **kw: Any) -> Emulator:
        emu = Emulator(tmp_path / f"emulator-{len(started)}.log", apps, **kw).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def operator_factory(tmp_path: Path, kubeconfig: str) -> Iterator[object]:
    started: list[Operator] = []

    def make(
        namespaces: list[str], allowed: Sequence[str] = (), wait: bool = True, **kw: Any
    ) -> Operator:
        op = Operator(
            tmp_path / f"operator-{len(started)}.log", kubeconfig, namespaces, allowed, **kw
        )
        started.append(op)
        return op.start(wait=wait)

    yield make
    for op in started:
        op.stop()


@pytest.fixture
def env_factory(
    kube: Kube, namespace: str, emulator_factory: Any, operator_factory: Any
) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(apps: dict[str, str], start: bool = True, **emu_kw: Any) -> Env:
        emu = emulator_factory(apps, **emu_kw)
        env = Env(kube, namespace, emu, operator_factory)
        env.secrets.update(apps.values())
        if start:
            env.start_operator()
        made.append(env)
        return env

    yield make
    for env in made:
        env.assert_no_leaks()
