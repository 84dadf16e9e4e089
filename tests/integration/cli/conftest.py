"""`kubectl lark` and the `--larkapp` CLI paths against the real apiserver, the emulator
and the real operator. Commands run as a user runs them: the real kubectl from the venv,
which finds `kubectl-lark` on PATH. Every test ends with a scan of everything the
commands printed for app secrets, tokens and passwords."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lark_operator.credentials import ALLOWED_BASE_URLS_ENV
from tests.helpers.env import Env
from tests.helpers.wait import eventually

VENV_BIN = Path(sys.executable).parent
GOOD_APP, GOOD_SECRET = "cli_cligood1", "cli-good-secret-value"
# Not taken from the test runner's environment: each test says what its commands get.
INHERITED_NOT = {"KUBECONFIG", ALLOWED_BASE_URLS_ENV, "LARK_APP_SECRET"}
WRONG_SECRET = "cli-wrong-secret-value"


@dataclass
class Cli:
    """Runs kubectl / lark-operator with KUBECONFIG set and the venv first on PATH."""

    kubeconfig: str
    printed: list[str] = field(default_factory=list)
    # Environment every command gets (e.g. the allowlist a test's LarkApps need).
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_NOT}
        # Only directories that exist: kubectl warns about missing PATH entries.
        path = [str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"]
        env.update(PATH=os.pathsep.join(p for p in path if os.path.isdir(p)))
        env.update({"KUBECONFIG": self.kubeconfig, **self.extra, **extra})
        return env

    def run(
        self, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            env=env or self.env(),
        )
        self.printed += [proc.stdout, proc.stderr]
        return proc

    def kubectl(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(VENV_BIN / "kubectl"), *args], self.env(**env))

    def lark_operator(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(VENV_BIN / "lark-operator"), *args], self.env(**env))

    def allow(self, url: str) -> None:
        """Every command allows `url` as the operator does: its environment variable."""
        self.extra[ALLOWED_BASE_URLS_ENV] = url


@pytest.fixture
def cli(kubeconfig: str) -> Cli:
    return Cli(kubeconfig)


@pytest.fixture
def apps(env_factory: Callable[..., Env], cli: Cli) -> Iterator[Env]:
    """An operator that made `good` Ready and found `bad`'s secret wrong (same app ID)."""
    env = env_factory({GOOD_APP: GOOD_SECRET})
    cli.allow(env.emu.url)  # the LarkApps' spec.domain, allowed for the operator as well
    env.app_secret("good-secret", GOOD_SECRET)
    env.app_secret("bad-secret", WRONG_SECRET)
    env.larkapp("good", GOOD_APP, secret_name="good-secret")
    env.larkapp("bad", GOOD_APP, secret_name="bad-secret")
    eventually(lambda: env.ready("good"), 30, what="good Ready")
    eventually(
        lambda: (
            (c := env.kube.condition(env.ns, "bad", "CredentialsValid")) and c["status"] == "False"
        ),
        30,
        what="bad CredentialsValid=False",
    )
    env.token("good")  # remembered as a secret for the scans
    yield env
    assert_nothing_leaked(cli, env.secrets)


def assert_nothing_leaked(cli: Cli, secrets: set[str]) -> None:
    printed = "\n".join(cli.printed)
    for secret in secrets:
        assert secret not in printed, "a secret or token appeared in CLI output"


def row_of(table: str, name: str) -> list[str]:
    for line in table.splitlines():
        cells = line.split()
        if len(cells) > 1 and cells[1] == name:
            return cells
    raise AssertionError(f"no row for {name} in:\n{table}")


def stdout(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr
