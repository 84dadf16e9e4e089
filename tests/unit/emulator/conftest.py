"""Store-app fixtures: an in-process emulator with one store app and two tenants, and the
receiving end of its callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from lark_operator.emulator import EmulatorHandle, running_emulator
from lark_operator.emulator.store import StoreApp

APP, SECRET, KEY, TOKEN = "cli_store1", "store-secret", "enc-key-1", "verif-token-1"


@dataclass
class Receiver:  # also used by test_sdk_fidelity.py
    """The operator's side of the wire: records every callback request as it came."""

    url: str = ""
    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.read(), dict(request.headers)))
        self.arrived.set()
        return web.json_response({"msg": "success"})

    async def next(self, timeout: float = 5.0) -> tuple[bytes, dict[str, str]]:
        count = len(self.requests)
        while len(self.requests) == count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout)
        return self.requests[-1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/lark/events", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/lark/events"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def store_emu(receiver: Receiver) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(
        {"cli_self": "self-secret"},
        store_apps={APP: (SECRET, StoreApp(KEY, TOKEN))},
        tenants=[(APP, "tenant-a"), (APP, "tenant-b")],
        event_url=receiver.url,
        ticket_interval=3600,
        resend_delay=0.05,
    ) as h:
        yield h
