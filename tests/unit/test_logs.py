"""JSON log lines as the runbooks query them: `jq 'select(.error_code == "99991663")'`."""

from __future__ import annotations

import json
import logging

from lark_operator.logs import JsonFormatter, TextFormatter, log_context


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("lark_operator.test", logging.ERROR, __file__, 1, "failed", (), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_error_code_is_a_string_in_json_lines() -> None:
    # The Open Platform client passes the code as the int it parsed from the body.
    line = json.loads(JsonFormatter().format(record(error_code=99991663, app_id="cli_x")))
    assert line["error_code"] == "99991663"
    assert line["app_id"] == "cli_x"
    with log_context(error_code=10014, namespace="ns"):
        line = json.loads(JsonFormatter().format(record()))
    assert line["error_code"] == "10014" and line["namespace"] == "ns"


def test_no_error_code_no_field() -> None:
    line = json.loads(JsonFormatter().format(record(error_code=None)))
    assert "error_code" not in line


def test_text_lines_carry_the_same_code() -> None:
    assert "error_code=99991663" in TextFormatter().format(record(error_code=99991663))
