"""Fault tests: real processes killed, stopped and restarted under a running operator.

`control_plane` is the session's own apiserver + etcd (stopped and started again by the
outage test, always left running); `TokenWatch` reads a token Secret continuously and
flags any read that served an expired or unknown token."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lark_devenv.controlplane import ControlPlane
from tests.helpers.env import Env
from tests.helpers.procs import Emulator, http_json
from tests.helpers.token_watch import TokenWatch  # noqa: F401 - re-exported for the tests


@pytest.fixture
def control_plane(kubeconfig: str) -> Iterator[ControlPlane]:
    if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
        pytest.skip("stops the apiserver: only with the harness's own control plane")
    cp = ControlPlane(Path(kubeconfig).parent)  # the session fixture's directory
    assert cp.running(), "the session control plane is not running"
    yield cp
    if not cp.running():
        cp.start()  # never leave the other tests without an apiserver


@pytest.fixture
def restart_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """restart(env, apps, **kw): a new emulator process on env.emu's port (its state starts
    empty); stopped at teardown like the factory's."""
    started: list[Emulator] = []

    def restart(env: Env, apps: dict[str, str], **kw: Any) -> Emulator:
        deadline = time.monotonic() + 10
        while True:  # the port may linger for a moment after the old process exits
            log = tmp_path / f"emulator-restarted-{len(started)}.log"
            emu = Emulator(log, apps, port=env.emu.port, **kw)
            try:
                started.append(emu.start())
                return emu
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    yield restart
    for emu in started:
        emu.stop()


def issue_directly(emu_url: str, app_id: str, secret: str) -> dict[str, Any]:
    """Another client of the same app fetching a tenant token (the platform hands the same
    token to every caller while it has more than the re-issue window left)."""
    return dict(
        http_json(
            emu_url + "/open-apis/auth/v3/tenant_access_token/internal",
            "POST",
            {"app_id": app_id, "app_secret": secret},
        )
    )
