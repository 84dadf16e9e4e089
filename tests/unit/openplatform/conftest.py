"""Fixtures of the client tests: a fake clock, the emulator and a client sharing it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import OpenPlatformClient
from tests.unit.openplatform.emulated import FakeClock, client_for, emulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[EmulatorHandle]:
    async with emulator(clock) as h:
        yield h


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[OpenPlatformClient]:
    async with client_for(clock) as c:
        yield c
