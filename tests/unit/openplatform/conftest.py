"""Fixtures of the client tests: a fake clock, the emulator and a client sharing it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import OpenPlatformClient
from tests.helpers.clock import Clock
from tests.unit.openplatform.emulated import client_for, emulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def emu(clock: Clock) -> AsyncIterator[EmulatorHandle]:
    async with emulator(clock) as h:
        yield h


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[OpenPlatformClient]:
    async with client_for(clock) as c:
        yield c
