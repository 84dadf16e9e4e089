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

from tests.fuzz.upstream import ScriptedUpstream

LONG = int(os.environ.get("LARK_FUZZ_EXAMPLES", "0") or 0)


def examples(default: int, *, per: int = 1) -> int:
    """Examples for one test: the CI default, or LARK_FUZZ_EXAMPLES // per for long runs
    (per > 1 for tests whose examples take up to a second each)."""
    if not LONG:
        return default
    return max(default, LONG // per)


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
