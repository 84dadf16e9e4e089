"""Run the emulator in-process on a free port: for tests, the demo and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lark_operator.emulator.server import PUSHER, STATE, create_app
from lark_operator.emulator.state import EmulatorState, Fault
from lark_operator.emulator.store import StoreApp
from lark_operator.emulator.storeapi import Pusher


@dataclass
class EmulatorHandle:
    """A running emulator: its URL and direct access to its state (same process)."""

    base_url: str
    host: str
    port: int
    app: web.Application = field(repr=False)

    @property
    def state(self) -> EmulatorState:
        return self.app[STATE]

    @property
    def pusher(self) -> Pusher:
        return self.app[PUSHER]

    def advance(self, seconds: float) -> float:
        return self.state.advance(seconds)

    def add_fault(self, **spec: Any) -> Fault:
        """Same fields as POST /_emulator/faults."""
        return self.state.add_fault(Fault.from_json(spec))

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def calls(self, app_id: str | None = None, path: str | None = None) -> int:
        if app_id is None:
            return int(self.state.calls_json()["total"])
        return self.state.calls_for(app_id, path)


@asynccontextmanager
async def running_emulator(
    apps: dict[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token_ttl: float = 7200,
    reissue_window: float = 1800,
    clock: Callable[[], float] | None = None,
    store_apps: dict[str, tuple[str, StoreApp]] | None = None,
    tenants: list[tuple[str, str]] = (),  # type: ignore[assignment]
    event_url: str | None = None,
    ticket_interval: float = 3600.0,
    resend_delay: float = 0.2,
) -> AsyncIterator[EmulatorHandle]:
    app = create_app(
        apps,
        token_ttl=token_ttl,
        reissue_window=reissue_window,
        clock=clock,
        store_apps=store_apps,
        tenants=tenants,
        event_url=event_url,
        ticket_interval=ticket_interval,
        resend_delay=resend_delay,
    )
    # Short shutdown: an injected latency must not hold a test's teardown for a minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield EmulatorHandle(
            base_url=f"http://{url_host}:{bound_port}", host=bound_host, port=bound_port, app=app
        )
    finally:
        await runner.cleanup()
