"""`lark-operator run` stops at once, exit status 2 and one line, on what a person must fix
before it can run (it used to retry every 60 s inside kopf)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": env.get("HOME", "/nonexistent")}
    return subprocess.run(
        [sys.executable, "-m", "lark_operator", "run", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_kubeconfig(tmp_path: Path) -> None:
    out = run(env={"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "lark-operator run: cannot load Kubernetes credentials"
    ), out.stderr


def test_port_in_use(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        out = run(
            "--health-port",
            str(port),
            "--bind-address",
            "127.0.0.1",
            env={"KUBECONFIG": str(config)},
        )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot serve /health and /metrics on 127.0.0.1:{port}" in lines[0]


def test_malformed_allowed_base_url(tmp_path: Path) -> None:
    out = run("--allowed-base-url", "open.example.com", env={})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "lark-operator run: --allowed-base-url: 'open.example.com' is not an http(s) base URL "
        "with a host (e.g. https://open.example.com)"
    ]
