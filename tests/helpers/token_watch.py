"""TokenWatch: reads a LarkApp's token Secret continuously, as a workload would, and flags
any read that served an expired token or one the platform never issued."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from tests.helpers.env import Env
from tests.helpers.procs import http_json


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

    def start(self) -> TokenWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> TokenWatch:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

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
