"""Fuzz fixtures: one event loop and one scripted upstream per module, driven
synchronously so that hypothesis can run thousands of examples through the real client.

LARK_FUZZ_EXAMPLES=N runs the fuzz tests with N examples each (slow ones with fewer);
the default is sized for CI.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.fuzz.upstream import ScriptedUpstream

LONG = int(os.environ.get("LARK_FUZZ_EXAMPLES", "0") or 0)


def examples(default: int, *, per: int = 1) -> int:
    """Examples for one test: the CI default, or LARK_FUZZ_EXAMPLES // per for long runs
    (per > 1 for tests whose examples take up to a second each)."""
    if not LONG:
        return default
    return max(default, LONG // per)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A long run takes longer than pytest-timeout's 300 s per test: lift it there."""
    if LONG:
        for item in items:
            if "tests/fuzz/" in str(item.fspath):
                item.add_marker(pytest.mark.timeout(0))


FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def fuzz(default: int, *, per: int = 1) -> settings:
    """Settings of one fuzz test. Slow tests (up to a second per example) do not shrink:
    a failure is reported as found (hypothesis would spend minutes shrinking it)."""
    phases = [p for p in Phase if not (per >= 50 and p is Phase.shrink)]
    return settings(FUZZ, max_examples=examples(default, per=per), phases=phases)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture(scope="module")
def upstream(loop: asyncio.AbstractEventLoop) -> Iterator[ScriptedUpstream]:
    up = loop.run_until_complete(ScriptedUpstream().start())
    yield up
    loop.run_until_complete(up.stop())
