"""Per-LarkApp series come and go with what they describe (metrics.py helpers): a reason
that no longer holds, a condition or probe no longer configured, a token type no longer
held must not linger at its last value, or alerts fire on ghosts."""

from __future__ import annotations

import uuid

from lark_operator import metrics


def value(metric: str, /, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def cond(ctype: str, status: str, reason: str) -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason}


def test_conditions_and_reasons_follow_the_status() -> None:
    ns, name = "ns", f"app-{uuid.uuid4().hex[:6]}"
    first = [cond("CredentialsValid", "False", "InvalidCredentials"), cond("Ready", "False", "X")]
    metrics.export_conditions(ns, name, first)
    key = {"namespace": ns, "name": name, "type": "CredentialsValid"}
    assert value("lark_service_condition", **key, status="False") == 1
    assert value("lark_service_condition", **key, status="True") == 0
    assert value("lark_service_condition_reason", **key, reason="InvalidCredentials") == 1

    second = [cond("CredentialsValid", "True", "Valid")]
    metrics.export_conditions(ns, name, second)
    assert value("lark_service_condition", **key, status="True") == 1
    assert value("lark_service_condition", **key, status="False") == 0
    assert value("lark_service_condition_reason", **key, reason="Valid") == 1
    assert value("lark_service_condition_reason", **key, reason="InvalidCredentials") is None
    # Ready vanished from the status: its series are gone.
    gone = {"namespace": ns, "name": name, "type": "Ready"}
    assert value("lark_service_condition", **gone, status="False") is None
    assert value("lark_service_condition_reason", **gone, reason="X") is None

    metrics.forget_larkapp(ns, name)
    assert value("lark_service_condition", **key, status="True") is None
    assert value("lark_service_condition_reason", **key, reason="Valid") is None


def test_phase_counts_move() -> None:
    phase = f"P{uuid.uuid4().hex[:6]}"
    other = f"Q{uuid.uuid4().hex[:6]}"
    a = metrics.count_phase(None, phase)
    b = metrics.count_phase(None, phase)
    assert value("lark_service_larkapps", phase=phase) == 2
    a = metrics.count_phase(a, other)
    assert (
        value("lark_service_larkapps", phase=phase),
        value("lark_service_larkapps", phase=other),
    ) == (1, 1)
    assert metrics.count_phase(a, other) == other  # unchanged: no double count
    assert value("lark_service_larkapps", phase=other) == 1
    metrics.count_phase(a, None)
    metrics.count_phase(b, None)
    assert (
        value("lark_service_larkapps", phase=phase),
        value("lark_service_larkapps", phase=other),
    ) == (0, 0)


def test_token_expiry_drops_types_no_longer_held() -> None:
    name = f"app-{uuid.uuid4().hex[:6]}"
    metrics.set_token_expiry("ns", name, {"tenant": 100.0, "app": 200.0})
    assert (
        value("lark_service_token_expiry_timestamp_seconds", namespace="ns", name=name, token="app")
        == 200
    )
    metrics.set_token_expiry("ns", name, {"tenant": 300.0})
    labels = {"namespace": "ns", "name": name}
    assert value("lark_service_token_expiry_timestamp_seconds", **labels, token="tenant") == 300
    assert value("lark_service_token_expiry_timestamp_seconds", **labels, token="app") is None


def test_forget_probes() -> None:
    name = f"app-{uuid.uuid4().hex[:6]}"
    for dep in ("postgres", "redis"):
        metrics.set_probe_up("ns", name, dep, False)
    metrics.forget_probes("ns", name, "redis")
    assert value("lark_service_probe_up", namespace="ns", name=name, dependency="redis") is None
    assert value("lark_service_probe_up", namespace="ns", name=name, dependency="postgres") == 0
    metrics.forget_probes("ns", name)
    assert value("lark_service_probe_up", namespace="ns", name=name, dependency="postgres") is None


def test_store_series_in_both_modes_and_gone_with_the_larkapp() -> None:
    """A store app's ticket time and tenant counts stay exported for a Ready LarkApp with
    LARK_OPERATOR_LARKAPP_METRICS=unhealthy (LarkStoreTicketStale matches Ready ones);
    activate_status is one of the series only unhealthy LarkApps export then."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    labels = {"namespace": "ns", "name": name}
    metrics.export_conditions("ns", name, [cond("Ready", "True", "Ready")])
    metrics.set_store("ns", name, wanted=3, ready=2, failing=1, ticket_at=1000.0)
    metrics.set_activate_status("ns", name, 2)
    try:
        metrics.configure(larkapp_series="unhealthy")
        assert value("lark_service_store_tenants", **labels, state="failing") == 1
        assert value("lark_service_ticket_received_timestamp_seconds", **labels) == 1000
        assert value("lark_service_app_activate_status", **labels) is None
        metrics.configure(larkapp_series="all")
        assert value("lark_service_store_tenants", **labels, state="wanted") == 3
        assert value("lark_service_app_activate_status", **labels) == 2
        metrics.set_activate_status("ns", name, None)  # unknown again: no series
        assert value("lark_service_app_activate_status", **labels) is None
    finally:
        metrics.configure(larkapp_series="all")
    metrics.forget_larkapp("ns", name)
    assert value("lark_service_store_tenants", **labels, state="wanted") is None
    assert value("lark_service_ticket_received_timestamp_seconds", **labels) is None
