"""A real Prometheus (Debian package `prometheus`) on a free loopback port, scraping given
targets every second and evaluating given rule files; its data lives in a temp directory."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures import procs

HOST = "127.0.0.1"


def binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise RuntimeError(
            "prometheus not found: install the Debian package `prometheus` "
            "(apt-get update && apt-get install -y prometheus)"
        )
    return path


class Prometheus:
    def __init__(self, root: Path, targets: list[str], rule_files: list[Path]):
        self.root = root
        self.port = procs.free_port()
        self.url = f"http://{HOST}:{self.port}"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "lark-operator",
                    # As the chart's ServiceMonitor: the operator's `namespace` label is the
                    # LarkApp's and must not be renamed exported_namespace.
                    "honor_labels": True,
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [
            binary(),
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self.process = procs.ManagedProcess(argv, log_path=root / "prometheus.log", cwd=root)

    def start(self, timeout: float = 30) -> Prometheus:
        self.process.start()
        self.process.wait_until(self._ready, timeout, "ready endpoint")
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises with Prometheus' error otherwise."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:  # 400/422: a query that does not parse/evaluate
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise QueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", (promql, data["resultType"])
        return list(data["result"])

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait: Prometheus shuts down cleanly (exit 0). Returns the exit code;
        whatever is left of the process group is killed either way."""
        proc = self.process.proc
        code = -1
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            code = proc.returncode if proc.returncode is not None else -1
        elif proc is not None:
            code = proc.returncode
        self.process.stop(timeout=2)
        return code

    def log(self) -> str:
        return self.process.log_tail(6000)


class QueryError(AssertionError):
    pass
