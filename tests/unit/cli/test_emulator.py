"""`lark-operator emulator` as a user runs it: a separate process on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lark_operator.cli.emulator import parse_apps
from lark_operator.cli.main import main

SRC = Path(__file__).resolve().parents[3] / "operator"


def test_serves_prints_its_url_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lark_operator",
            "emulator",
            "--port",
            "0",
            "--app",
            "cli_one:s1",
            "--app",
            "cli_two:s2",
            "--token-ttl",
            "300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        assert int(match.group(2)) > 0
        request = urllib.request.Request(
            match.group(1) + "/open-apis/auth/v3/tenant_access_token/internal",
            data=json.dumps({"app_id": "cli_two", "app_secret": "s2"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.load(answer)
        assert body["code"] == 0 and body["expire"] == 300
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_parse_apps() -> None:
    assert parse_apps(["cli_a:x:y", "cli_b:z"]) == {"cli_a": "x:y", "cli_b": "z"}
    for bad in (["cli_a"], ["cli_a:"], [":secret"]):
        with pytest.raises(ValueError):
            parse_apps(bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["--app", "cli_a"],
        ["--app", "cli_a:s", "--token-ttl", "0"],
        ["--app", "cli_a:s", "--reissue-window", "-1"],
        ["--port", "70000"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", *argv]) == 2
    err = capsys.readouterr().err
    assert "emulator" in err
    assert "cli_a:s" not in err  # an --app argument (it holds a secret) is never echoed
