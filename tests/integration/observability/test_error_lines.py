"""The on-call engineer's `grep ERROR` (the old guides): a refresh failure that lets a token
lapse is an ERROR line carrying namespace, name, app_id and error_code (a string, as the
guides' `jq 'select(.error_code == "5000")'` expects); one that keeps a valid token is a
WARNING."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_errorline01", "error-line-secret-0001"


def _lines(op: Any) -> list[dict[str, Any]]:
    out = []
    for line in op.logs().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_a_failure_that_lets_the_token_lapse_is_an_error_line(env_factory: Any) -> None:
    # ttl 30 s, re-issue window 29 s: the refresh is due ~3 s after issue, expiry at 30 s.
    env = env_factory({APP: SECRET}, token_ttl=30, reissue_window=29)
    env.app_secret("lark-secret", SECRET)
    env.larkapp("app", APP)
    eventually(lambda: env.ready("app"), 30, what="Ready")
    env.emu.fault(app_id=APP, code=5000, count=100000)

    def failures(level: str) -> list[dict[str, Any]]:
        return [
            r
            for r in _lines(env.op)
            if r.get("level") == level and "refresh failed" in r.get("message", "")
        ]

    warned = eventually(lambda: failures("WARNING"), 20, what="a WARNING while the token lives")
    assert warned[0]["error_code"] == "5000"
    errors = eventually(lambda: failures("ERROR"), 45, what="an ERROR once the token lapses")
    line = errors[0]
    assert (line["namespace"], line["name"], line["app_id"]) == (env.ns, "app", APP)
    assert line["error_code"] == "5000"
    assert "expire" in line["message"]
    env.emu.clear_faults()
