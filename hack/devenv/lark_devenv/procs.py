"""Run a server process in its own process group, wait until it serves, stop it for sure.

Used by `lark_devenv.servers` (the demo, and the tests through tests/fixtures). Every process
started here is remembered until stopped; an atexit hook kills whatever is left when the
Python process exits, so no server outlives the demo or a test run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_LIVE: set[ManagedProcess] = set()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def service_user(name: str) -> str | None:
    """PostgreSQL and RabbitMQ refuse root: use their Debian account when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        return "nobody"
    return name


def owned_tempdir(prefix: str, user: str | None) -> Path:
    """A fresh directory under /tmp the server account can write to (pytest's tmp_path is
    0700 root and unreachable for another account)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    chown_tree(path, user)
    path.chmod(0o755)
    return path


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a helper command to completion (initdb, rabbitmqctl); raise with its output."""
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        **_user_kwargs(user),
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc


def _user_kwargs(user: str | None) -> dict[str, Any]:
    if user is None or os.geteuid() != 0 or user == "root":
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class ManagedProcess:
    """One long-running server process (and everything in its process group)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        signal_group: bool = True,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.user = user
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.signal_group = signal_group
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: stop() can take all of it
                **_user_kwargs(self.user),
            )
        _LIVE.add(self)

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                code, tail = self.proc.returncode, self.log_tail()
                raise RuntimeError(f"{self.argv[0]} exited {code} before {what}:\n{tail}")
            if ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.argv[0]}: no {what} after {timeout:g}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0, kill: bool = False) -> None:
        """Signal, wait, then SIGKILL the whole group; kill=True skips the polite part."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            sig = signal.SIGKILL if kill else self.stop_signal
            with contextlib.suppress(ProcessLookupError):
                if self.signal_group:
                    os.killpg(pgid, sig)
                else:
                    proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Stragglers (backends, helper ports) that stayed in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(10)
        self.proc = None
        _LIVE.discard(self)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@atexit.register
def _kill_leftovers() -> None:
    for managed in list(_LIVE):
        with contextlib.suppress(Exception):
            managed.stop(timeout=2, kill=True)
