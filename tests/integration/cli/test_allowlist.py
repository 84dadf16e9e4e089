"""No CLI command sends an App Secret to a domain the operator would refuse.

A listener stands where a hostile LarkApp's `spec.domain` points (or a `--domain` typed by
hand). Every command that sends an App Secret runs as a real process: refused, it exits 2
with one line naming the URL and how to allow it, and the listener saw no connection at
all. Allowed the way the operator allows it (`--allowed-base-url`, or
LARK_OPERATOR_ALLOWED_BASE_URLS), the same command reaches the listener."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lark_operator.credentials import ALLOWED_BASE_URLS_ENV
from tests.helpers.kube import Kube
from tests.integration.cli.conftest import VENV_BIN, Cli, assert_nothing_leaked, stdout

pytestmark = pytest.mark.integration

APP, SECRET = "cli_listened1", "secret-for-the-listener-only"
LARKAPP = "elsewhere"


class Listener(ThreadingHTTPServer):
    """Counts every TCP connection it accepts and keeps every request body; answers a token
    request as the platform would."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.connections = 0
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Called in the serving thread for each accepted connection, in accept order.
        with self._lock:
            self.connections += 1
        return True

    def settled_connections(self) -> int:
        """Connections accepted so far by others: one of our own is accepted after every
        connection already queued (accept is FIFO), so none is still in the backlog."""
        with self._lock:
            before = self.connections
        with socket.create_connection(self.server_address[:2], timeout=5):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with self._lock:
                    if self.connections > before:
                        self.connections -= 1  # not counting our own
                        return self.connections
                time.sleep(0.01)
        raise AssertionError("the listener did not accept a connection within 10s")


class _Handler(BaseHTTPRequestHandler):
    server: Listener

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(json.loads(body or b"{}"))
        answer = {"code": 0, "msg": "ok", "tenant_access_token": "t-listener", "expire": 7200}
        raw = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def commands(namespace: str, url: str) -> dict[str, list[str]]:
    """Every command that sends an App Secret, by its two ways of naming one."""
    lark_operator, kubectl = str(VENV_BIN / "lark-operator"), str(VENV_BIN / "kubectl")
    found: dict[str, list[str]] = {}
    # token-info / refresh-token --larkapp read the token Secret / ask the operator: they
    # send nothing upstream (test_larkapp_commands_that_send_nothing_reach_nothing).
    found["validate --larkapp"] = [lark_operator, "validate", "--larkapp", f"{namespace}/{LARKAPP}"]
    for command in ("validate", "token-info", "refresh-token"):
        found[f"{command} --app-id"] = [lark_operator, command, "--app-id", APP, "--domain", url]
    found["kubectl lark validate"] = [kubectl, "lark", "validate", LARKAPP, "-n", namespace]
    return found


@pytest.fixture
def hostile(kube: Kube, namespace: str, listener: Listener) -> str:
    """A LarkApp whose spec.domain is the listener (no operator: it would refuse it)."""
    kube.put_secret(namespace, "app", {"appSecret": SECRET})
    spec = {"appId": APP, "appSecretRef": {"name": "app"}, "domain": listener.url}
    kube.create_larkapp(namespace, LARKAPP, spec)
    return namespace


def test_no_command_sends_the_app_secret_to_a_domain_not_allowed(
    cli: Cli, hostile: str, listener: Listener
) -> None:
    url = listener.url
    # Nothing allowed; other URLs allowed (another port, a path under the listener's).
    for allowed in ("", f"http://127.0.0.1:1/,{url}/evil"):
        env = {"LARK_APP_SECRET": SECRET, ALLOWED_BASE_URLS_ENV: allowed}
        for what, argv in commands(hostile, url).items():
            proc = cli.run(argv, cli.env(**env))
            assert proc.returncode == 2, (what, stdout(proc))
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1, (what, proc.stderr)
            assert "DomainNotAllowed" in lines[0], (what, lines[0])
            assert f"{url} is not an allowed base URL" in lines[0], (what, lines[0])
            assert f"--allowed-base-url {url}" in lines[0], (what, lines[0])
            assert f"{ALLOWED_BASE_URLS_ENV}={url}" in lines[0], (what, lines[0])
            assert proc.stdout == "", what
    assert listener.settled_connections() == 0
    assert listener.bodies == []
    assert_nothing_leaked(cli, {SECRET})


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_allowed_url_is_reached_by_every_command(
    cli: Cli, hostile: str, listener: Listener, how: str
) -> None:
    url = listener.url
    env = {"LARK_APP_SECRET": SECRET}
    if how == "env":
        env[ALLOWED_BASE_URLS_ENV] = f"http://127.0.0.1:1,{url}/"
    found = commands(hostile, url)
    for what, argv in found.items():
        if how == "flag":
            argv = [*argv, "--allowed-base-url", f"{url}/"]
        proc = cli.run(argv, cli.env(**env))
        assert proc.returncode == 0, (what, stdout(proc))
    assert listener.settled_connections() >= len(found)
    assert [b.get("app_id") for b in listener.bodies] == [APP] * len(found)
    assert {b.get("app_secret") for b in listener.bodies} == {SECRET}
    assert_nothing_leaked(cli, {SECRET})


def test_larkapp_commands_that_send_nothing_reach_nothing(
    cli: Cli, hostile: str, listener: Listener
) -> None:
    """token-info reads the token Secret, refresh-token asks the operator (none runs here):
    allowed or not, neither connects to spec.domain."""
    env = {ALLOWED_BASE_URLS_ENV: listener.url}
    lark_operator = str(VENV_BIN / "lark-operator")
    ref = f"{hostile}/{LARKAPP}"
    info = cli.run([lark_operator, "token-info", "--larkapp", ref], cli.env(**env))
    assert info.returncode == 1, stdout(info)
    assert f"Secret {LARKAPP}-lark-token does not exist" in info.stderr
    argv = [lark_operator, "refresh-token", "--larkapp", ref, "--timeout", "1"]
    refresh = cli.run(argv, cli.env(**env))
    assert refresh.returncode == 1, stdout(refresh)
    assert "the operator did not handle the refresh" in refresh.stderr
    assert listener.settled_connections() == 0
    assert listener.bodies == []
    assert_nothing_leaked(cli, {SECRET})
