"""Fault tests: real processes killed, stopped and restarted under a running operator.

`control_plane` is the session's own apiserver + etcd (stopped and started again by the
outage test, always left running); `TokenWatch` reads a token Secret continuously and
flags any read that served an expired or unknown token."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lark_operator.devenv.controlplane import ControlPlane
from tests.helpers.env import Env
from tests.helpers.procs import Emulator, http_json


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


class TokenWatch:
    """Every 0.1 s: read the token Secret (reads that fail, e.g. with the apiserver down,
    are counted, not judged), then the emulator's issued tokens. A token is good until the
    expiry the emulator gave it, timed on the local clock (the emulator's clock may have
    been moved; an emulator restarted empty no longer lists the old tokens, which the
    platform would still honour until they expire)."""

    def __init__(self, env: Env, name: str, app_id: str):
        self.env, self.name, self.app_id = env, name, app_id
        self.url = env.emu.url  # a restarted emulator keeps the port
        self.expiry: dict[str, float] = {}
        self.seen: list[str] = []
        self.bad: list[str] = []
        self.failed_reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TokenWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _learn(self) -> bool:
        try:
            answer = http_json(f"{self.url}/_emulator/tokens/{self.app_id}", timeout=2)
        except OSError:
            return False
        now = time.time()
        for t in answer["tokens"]:
            self.expiry[t["token"]] = now + (t["expires_at"] - answer["now"])
        return True

    def _read(self) -> str | None:
        # A short timeout: a stopping apiserver may accept a connection and never answer,
        # and this thread must end with the test.
        secret = self.env.kube.core.read_namespaced_secret(
            f"{self.name}-lark-token", self.env.ns, _request_timeout=2
        )
        raw = (secret.data or {}).get("tenant_access_token")
        if not raw:
            return None
        tok = base64.b64decode(raw).decode()
        self.env.secrets.add(tok)  # for the leak scan
        return tok

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tok = self._read()
            except Exception:
                tok = None
                self.failed_reads += 1
            self._learn()
            if tok is not None:
                if tok not in self.expiry:
                    self.bad.append(f"{time.strftime('%X')}: token unknown to the platform")
                elif time.time() >= self.expiry[tok]:
                    self.bad.append(f"{time.strftime('%X')}: expired token served")
                if not self.seen or self.seen[-1] != tok:
                    self.seen.append(tok)
            self._stop.wait(0.1)
