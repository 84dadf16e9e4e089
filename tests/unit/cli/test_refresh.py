"""kubectl_plugin/commands.py: the refresh request's bookkeeping."""

from __future__ import annotations

import datetime as dt

from lark_operator.cli.refresh import outcome_recorded as _outcome_recorded
from lark_operator.cli.refresh import rfc3339_micro
from tests.unit.cli.kubectl_plugin.larkapps import NOW, at


def test_refresh_request_values_are_unique_and_outcomes_recognised() -> None:
    a = rfc3339_micro(NOW)
    b = rfc3339_micro(NOW + dt.timedelta(microseconds=1))
    assert a == "2026-01-02T03:00:00.000000Z" and a != b and a < b
    requested = NOW + dt.timedelta(seconds=0.7)  # status has whole seconds
    assert _outcome_recorded({"status": {"token": {"refreshedAt": at(0)}}}, requested)
    assert _outcome_recorded({"status": {"lastError": {"at": at(1)}}}, requested)
    assert not _outcome_recorded({"status": {"token": {"refreshedAt": at(-1)}}}, requested)
    assert not _outcome_recorded({}, requested)
