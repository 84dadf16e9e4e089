"""Settings are read once, by load(), which names the bad variable or flag; nothing is read
at import time (a malformed variable used to break even `--help`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lark_operator.settings import SettingsError, load


def test_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_OPERATOR_NAMESPACES", "a, b,")
    monkeypatch.setenv("LARK_OPERATOR_API_RATE", "2.5")
    monkeypatch.setenv("LARK_OPERATOR_NEAR_EXPIRY_RETRY_CAP_SECONDS", "7")
    s = load(health_port=9999, metrics_port=None)
    assert s.namespaces == ["a", "b"] and s.api_rate_per_second == 2.5
    assert s.near_expiry_retry_cap == 7 and s.health_port == 9999 and s.metrics_port is None
    assert load(namespaces=["x"]).namespaces == ["x"]  # a flag beats the environment


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("LARK_OPERATOR_HEALTH_PORT", "abc", "LARK_OPERATOR_HEALTH_PORT"),
        ("LARK_OPERATOR_HEALTH_PORT", "70000", "LARK_OPERATOR_HEALTH_PORT"),
        ("LARK_OPERATOR_API_RATE", "fast", "LARK_OPERATOR_API_RATE"),
        ("LARK_OPERATOR_LOG_FORMAT", "xml", "LARK_OPERATOR_LOG_FORMAT"),
        ("LARK_OPERATOR_ALLOWED_BASE_URLS", "not a url", "LARK_OPERATOR_ALLOWED_BASE_URLS"),
    ],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as e:
        load()
    assert str(e.value).startswith(f"{named}: "), str(e.value)


def test_a_bad_flag_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^--allowed-base-url: 'ftp://x'"):
        load(allowed_base_urls=["ftp://x"])
    with pytest.raises(SettingsError, match=r"^--health-port: "):
        load(health_port=0)


def test_help_and_run_with_a_malformed_variable() -> None:
    env = {"LARK_OPERATOR_HEALTH_PORT": "abc", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "lark_operator"]
    assert subprocess.run([*cmd, "--help"], env=env, capture_output=True).returncode == 0
    run = subprocess.run([*cmd, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "lark-operator run: LARK_OPERATOR_HEALTH_PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')"
    ]
