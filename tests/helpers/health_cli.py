"""`health-check` and `validate-env` run in-process as the CLI parses them, with none of the
runner's own dependency URLs or app settings in the environment (unit and integration
tests of cli/health.py share this)."""

from __future__ import annotations

import argparse

import pytest

from lark_operator.cli import health
from lark_operator.cli.environment import PARTS
from lark_operator.credentials import ALLOWED_BASE_URLS_ENV

ALL_URL_VARS = [v for names in health.ENV_URLS.values() for v in names]
ALL_URL_VARS += list(health.MANAGEMENT_ENV)
ALL_URL_VARS += [v for parts in PARTS.values() for v in parts.variables]


def clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    app = ["LARK_APP_ID", "LARK_APP_SECRET", "LARK_DOMAIN", ALLOWED_BASE_URLS_ENV]
    for var in [*app, *ALL_URL_VARS]:
        monkeypatch.delenv(var, raising=False)


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `lark-operator <argv>`."""
    parser = argparse.ArgumentParser(prog="lark-operator")
    health.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code = int(args.func(args))
    out, err = capsys.readouterr()
    return code, out, err
