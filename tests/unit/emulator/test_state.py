"""The emulator's model, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from lark_operator.emulator.state import (
    APP_PATH,
    TENANT_PATH,
    EmulatorState,
    Fault,
)
from tests.helpers.clock import Clock


def make(**kw: Any) -> tuple[EmulatorState, Clock]:
    clock = Clock()
    return EmulatorState({"cli_a": "s"}, clock=clock, **kw), clock


def test_expire_counts_down_and_token_is_reused_until_the_window() -> None:
    state, clock = make(token_ttl=7200, reissue_window=1800)
    first, expire = state.issue("cli_a", "tenant")
    assert expire == 7200
    clock.now += 0.4
    assert state.issue("cli_a", "tenant") == (first, 7199)  # whole seconds, rounded down
    clock.now += 5399.6  # exactly 1800 left
    assert state.issue("cli_a", "tenant") == (first, 1800)
    clock.now += 0.5
    second, expire = state.issue("cli_a", "tenant")
    assert second.value != first.value and expire == 7200
    assert state.lookup(first.value, "tenant") is first  # old token valid until its expiry
    clock.now += 1800
    assert state.lookup(first.value, "tenant") is None
    assert state.lookup(second.value, "tenant") is second


def test_window_longer_than_ttl_means_a_new_token_every_call() -> None:
    state, _ = make(token_ttl=60, reissue_window=61)
    a, _ = state.issue("cli_a", "tenant")
    b, _ = state.issue("cli_a", "tenant")
    assert a.value != b.value


def test_token_kinds_are_not_interchangeable() -> None:
    state, _ = make()
    app, _ = state.issue("cli_a", "app")
    assert app.value.startswith("a-")
    assert state.lookup(app.value, "tenant") is None
    assert state.lookup(app.value, "app") is app


def test_credentials_codes() -> None:
    state, _ = make()
    assert state.check_credentials("cli_a", "s") == 0
    assert state.check_credentials("cli_a", "S") == 10014
    assert state.check_credentials("cli_zzz", "s") == 10003


def test_rotation_keeps_tokens_unless_revoked() -> None:
    state, _ = make()
    token, _ = state.issue("cli_a", "tenant")
    state.set_app("cli_a", "new")
    assert state.check_credentials("cli_a", "s") == 10014
    assert state.lookup(token.value, "tenant") is token
    state.set_app("cli_a", "newer", revoke=True)
    assert state.lookup(token.value, "tenant") is None
    assert state.issue("cli_a", "tenant")[0].value != token.value


def test_clock_only_moves_forward() -> None:
    state, clock = make()
    assert state.advance(10) == clock.now + 10
    with pytest.raises(ValueError):
        state.advance(-1)


def test_fault_count_is_consumed_and_filters_apply() -> None:
    state, _ = make()
    state.add_fault(Fault.from_json({"code": 5000, "count": 2, "app_id": "cli_a"}))
    state.add_fault(Fault.from_json({"code": 1500, "endpoint": APP_PATH}))
    assert state.take_fault("cli_b", TENANT_PATH) is None
    got = state.take_fault("cli_a", TENANT_PATH)
    assert got is not None and got.code == 5000
    assert state.take_fault("cli_a", TENANT_PATH) is not None
    assert state.take_fault("cli_a", TENANT_PATH) is None  # used up
    for _ in range(3):  # no count: until cleared
        got = state.take_fault("cli_b", APP_PATH)
        assert got is not None and got.code == 1500
    state.clear_faults()
    assert state.take_fault("cli_b", APP_PATH) is None


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"nope": 1},
        {"code": "5000"},
        {"code": True},
        {"count": 0},
        {"http_status": 99},
        {"malformed": "weird"},
        {"latency_ms": -5},
        {"endpoint": "/open-apis/other"},
        [],
    ],
)
def test_fault_validation(spec: object) -> None:
    with pytest.raises(ValueError):
        Fault.from_json(spec)


def test_malformed_true_means_json_garbage() -> None:
    assert Fault.from_json({"malformed": True}).malformed == "json_garbage"


def test_calls_are_counted_per_app_and_path() -> None:
    state, _ = make()
    state.record_call("cli_a", TENANT_PATH)
    state.record_call("cli_a", TENANT_PATH)
    state.record_call(None, APP_PATH)
    assert state.calls_json() == {
        "total": 3,
        "apps": {"cli_a": {TENANT_PATH: 2}, "-": {APP_PATH: 1}},
    }
    state.reset_calls()
    assert state.calls_json() == {"total": 0, "apps": {}}
