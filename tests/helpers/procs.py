"""Real processes for integration tests: the emulator and the operator, run through the
same console script a user runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from lark_devenv.controlplane import free_port

SCRIPT = str(Path(sys.executable).parent / "lark-operator")


class Proc:
    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv, self.log_path = argv, log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 5) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


class Emulator(Proc):
    url: str

    def __init__(
        self,
        log_path: Path,
        apps: dict[str, str],
        token_ttl: int = 7200,
        reissue_window: int = 1800,
        port: int | None = None,
        store_apps: Sequence[str] = (),  # APP_ID:SECRET:ENCRYPT_KEY:VERIFICATION_TOKEN
        tenants: Sequence[str] = (),  # APP_ID:TENANT_KEY
        event_url: str | None = None,
        ticket_interval: float = 3600,
    ):
        self.port = port or free_port()
        argv = [
            SCRIPT,
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--token-ttl",
            str(token_ttl),
            "--reissue-window",
            str(reissue_window),
        ]
        for app_id, secret in apps.items():
            argv += ["--app", f"{app_id}:{secret}"]
        for spec in store_apps:
            argv += ["--store-app", spec]
        for spec in tenants:
            argv += ["--tenant", spec]
        if event_url:
            argv += ["--event-url", event_url, "--ticket-interval", str(ticket_interval)]
        super().__init__(argv, log_path)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        super().start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if re.search(r"listening on http://", self.logs()):
                return self
            if not self.alive():
                raise RuntimeError(f"emulator exited: {self.logs()}")
            time.sleep(0.1)
        raise RuntimeError(f"emulator did not start: {self.logs()}")

    def calls(self) -> dict[str, Any]:
        return dict(http_json(self.url + "/_emulator/calls"))

    def token_calls(self, app_id: str) -> int:
        per_app = self.calls().get("apps", {}).get(app_id, {})
        return sum(n for path, n in per_app.items() if "access_token" in path)

    def fault(self, **fault: Any) -> None:
        http_json(self.url + "/_emulator/faults", "POST", fault)

    def clear_faults(self) -> None:
        http_json(self.url + "/_emulator/faults", "DELETE")

    def set_app(self, app_id: str, secret: str | None = None, **availability: Any) -> None:
        body = {"app_id": app_id, **availability}
        if secret is not None:
            body["app_secret"] = secret
        http_json(self.url + "/_emulator/apps", "POST", body)

    def event(self, app_id: str, type: str, tenant_key: str | None = None) -> Any:
        """Push a tenant event (app_open / app_uninstalled) or a new app_ticket now."""
        body = {"app_id": app_id, "type": type, "tenant_key": tenant_key}
        return http_json(self.url + "/_emulator/events", "POST", body)

    def pushes(self) -> list[dict[str, Any]]:
        return list(http_json(self.url + "/_emulator/events")["pushes"])

    def tokens(self, app_id: str) -> Any:
        return http_json(self.url + f"/_emulator/tokens/{app_id}")


class Operator(Proc):
    def __init__(
        self,
        log_path: Path,
        kubeconfig: str,
        namespaces: list[str],
        allowed: Sequence[str] = (),
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        events_port: int | None = None,
    ):
        self.health_port = free_port()
        self.events_port = events_port or free_port()
        argv = [SCRIPT, "run", "--health-port", str(self.health_port), "--log-format", "json"]
        argv += ["--events-port", str(self.events_port)]
        for ns in namespaces:
            argv += ["--namespace", ns]
        for url in allowed:
            argv += ["--allowed-base-url", url]
        argv += list(extra)
        super().__init__(argv, log_path, env={"KUBECONFIG": kubeconfig, **(env or {})})

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.events_port}/lark/events"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/health"

    def start(self, wait: bool = True) -> Operator:
        super().start()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"operator exited:\n{self.logs()[-3000:]}")
            try:
                last = http_json(self.health_url)
                if last.get("status") == "healthy":
                    return dict(last)
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise RuntimeError(f"operator not healthy: {last}\n{self.logs()[-3000:]}")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """One sample from /metrics (0 when the series does not exist yet)."""
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def log_entries(self, containing: str) -> list[dict[str, Any]]:
        """The JSON log entries whose message contains `containing`, in order, each with its
        time as `at` (epoch seconds, from the operator's own clock)."""
        entries = []
        for line in self.logs().splitlines():
            if containing not in line or not line.startswith("{"):
                continue
            entry = json.loads(line)
            if containing in entry.get("message", ""):
                stamp = entry["timestamp"].replace("Z", "+00:00")
                entries.append({**entry, "at": dt.datetime.fromisoformat(stamp).timestamp()})
        return entries
