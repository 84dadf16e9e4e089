"""The client against the in-process emulator. A fake clock is shared by both, so hours of
token lifetime pass instantly; the client's sleeps (backoff, rate limits) move that clock
instead of waiting. The fixtures built on these are in conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lark_operator import metrics
from lark_operator.emulator import EmulatorHandle, running_emulator
from lark_operator.openplatform import TOKEN_PATHS, OpenPlatformClient
from tests.helpers.clock import Clock

APP, SECRET = "cli_alpha", "alpha-secret-value"
OTHER, OTHER_SECRET = "cli_beta", "beta-secret-value"
TENANT = TOKEN_PATHS["tenant"]


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def emulator(clock: Clock, **kw: Any) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator({APP: SECRET, OTHER: OTHER_SECRET}, clock=clock, **kw) as h:
        yield h


@asynccontextmanager
async def client_for(clock: Clock, **kw: Any) -> AsyncIterator[OpenPlatformClient]:
    options: dict[str, Any] = {"backoff_base": 0.05, "read_timeout": 2.0, "rng": lambda: 0.5}
    options.update(kw)
    async with OpenPlatformClient(clock=clock, sleep=clock.sleep, **options) as c:
        yield c


def current(emu: EmulatorHandle, kind: str, app: str = APP) -> str:
    return next(t["token"] for t in emu.state.tokens_of(app) if t["current"] and t["type"] == kind)
