"""Observability tests: the real operator scraped by a real Prometheus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures import procs
from tests.fixtures.servers import redis_server, server_passwords  # noqa: F401
from tests.integration.observability.prometheus import Prometheus


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., Prometheus]]:
    started: list[tuple[Prometheus, Path]] = []

    def make(targets: list[str], rule_files: list[Path]) -> Prometheus:
        root = procs.owned_tempdir("lark-prometheus-", None)
        prom = Prometheus(root, targets, rule_files)
        started.append((prom, root))
        return prom.start()

    yield make
    for prom, root in started:
        prom.stop()
        procs.remove_tree(root)
