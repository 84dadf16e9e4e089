"""The CPU and memory runbooks' metrics, scraped from a running operator's /metrics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.labels
    }


def test_process_metrics_are_exported(operator_factory: Any, namespace: str) -> None:
    started = time.time()
    op = operator_factory([namespace])
    scraped = samples(op.metrics())
    # This very process: it used CPU to start, holds tens of MB, started moments ago.
    assert scraped["process_cpu_seconds_total"] > 0
    assert scraped["process_resident_memory_bytes"] > 10 * 2**20
    assert started - 5 <= scraped["process_start_time_seconds"] <= time.time()
    assert 0 < scraped["process_open_fds"] < scraped["process_max_fds"]
    assert "lark_service_build_info" in op.metrics()  # the operator's own, alongside
