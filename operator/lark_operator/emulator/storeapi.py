"""The emulator's store-app endpoints and its event pushes, as the platform has them:

- POST /open-apis/auth/v3/app_access_token {app_id, app_secret, app_ticket}: 10012 for a
  ticket that is not one of the last two pushed (stale or never pushed);
- POST /open-apis/auth/v3/tenant_access_token {app_access_token, tenant_key}: 99991664 for
  an unknown/expired app token, 10013 for a tenant that has not installed the app;
- POST /open-apis/auth/v3/app_ticket/resend {app_id, app_secret}: a new ticket is pushed
  soon after (`resend_delay`);
- every `ticket_interval` seconds (from the start) a new app_ticket is pushed to
  `event_url` for each store app, encrypted and signed as documented (callbacks.seal);
  signed with the wall clock (not the emulator's advanced clock): receivers check
  freshness against theirs.
Controls: POST /_emulator/events {app_id, type: app_open|app_uninstalled|app_ticket,
tenant_key?} changes the app's tenants and pushes the event now, answering how the
receiver answered; GET /_emulator/events lists the pushes made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from lark_operator.callbacks import event_payload, seal
from lark_operator.emulator.state import EmulatorState
from lark_operator.emulator.store import (
    INVALID_APP_TOKEN,
    RESEND_PATH,
    STORE_APP_PATH,
    STORE_TENANT_PATH,
    TENANT_TOKEN_FAILED,
    TICKET_INVALID,
)

log = logging.getLogger("lark_operator.emulator")

Answer = Callable[[dict[str, Any]], web.Response]
Error = Callable[[int], web.Response]
FaultHook = Callable[[web.Request, str | None, str], Awaitable[web.StreamResponse | None]]
TENANT_EVENTS = ("app_open", "app_uninstalled")


class Pusher:
    """Pushes callbacks to the event URL; keeps a record of every push for tests."""

    def __init__(self, state: EmulatorState, event_url: str | None, interval: float) -> None:
        self.state, self.event_url, self.interval = state, event_url, interval
        self.pushes: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self, _: web.Application) -> None:
        if self.event_url and self.state.store:
            self._spawn(self._periodic())

    async def stop(self, _: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _periodic(self) -> None:
        while True:
            for app_id in list(self.state.store):
                await self.push_ticket(app_id)
            await asyncio.sleep(self.interval)

    def resend_soon(self, app_id: str, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self.push_ticket(app_id)

        self._spawn(later())

    async def push_ticket(self, app_id: str) -> int | None:
        ticket = self.state.store[app_id].new_ticket()
        event = {"app_id": app_id, "type": "app_ticket", "app_ticket": ticket}
        return await self.push(app_id, event)

    async def push(self, app_id: str, event: dict[str, Any]) -> int | None:
        """POST one event; the receiver's HTTP status (None: not delivered)."""
        record: dict[str, Any] = {"app_id": app_id, "type": event["type"], "at": time.time()}
        self.pushes.append(record)
        if not self.event_url:
            record["status"] = None
            return None
        app = self.state.store[app_id]
        body, headers = seal(app.encrypt_key, event_payload(app.verification_token, event))
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(self.event_url, data=body, headers=headers) as resp:
                await resp.read()
                record["status"] = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            record["status"], record["error"] = None, type(e).__name__
        log.info("pushed %s for %s: %s", event["type"], app_id, record["status"])
        status: int | None = record["status"]
        return status


def register(
    app: web.Application,
    state_key: web.AppKey[EmulatorState],
    pusher: Pusher,
    *,
    answer: Answer,
    error: Error,
    fault: FaultHook,
    resend_delay: float,
) -> None:
    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def text(body: dict[str, Any], name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) and value else None

    async def app_token(request: web.Request) -> web.StreamResponse:
        state = request.app[state_key]
        body = await body_of(request)
        app_id = text(body, "app_id")
        state.record_call(app_id, request.path)
        if (faulty := await fault(request, app_id, "app")) is not None:
            return faulty
        secret, ticket = text(body, "app_secret"), text(body, "app_ticket")
        if app_id is None or secret is None or ticket is None or app_id not in state.store:
            return error(10003)
        code = state.check_credentials(app_id, secret)
        if code:
            return error(code)
        if not state.store[app_id].ticket_valid(ticket):
            return error(TICKET_INVALID)
        token, expire = state.issue(app_id, "app")
        return answer({"code": 0, "msg": "ok", "app_access_token": token.value, "expire": expire})

    async def tenant_token(request: web.Request) -> web.StreamResponse:
        state = request.app[state_key]
        body = await body_of(request)
        value, tenant_key = text(body, "app_access_token"), text(body, "tenant_key")
        app_id = state.owner_of(value) if value else None
        state.record_call(app_id, request.path)
        if (faulty := await fault(request, app_id, "tenant")) is not None:
            return faulty
        if value is None or tenant_key is None:
            return error(10003)
        owner = state.lookup(value, "app")
        if owner is None:
            return error(INVALID_APP_TOKEN)
        store = state.store.get(owner.app_id)
        if store is None or tenant_key not in store.tenants:
            return error(TENANT_TOKEN_FAILED)
        token, expire = state.issue(owner.app_id, "tenant", tenant_key)
        payload = {"code": 0, "msg": "ok", "tenant_access_token": token.value, "expire": expire}
        return answer(payload)

    async def resend(request: web.Request) -> web.StreamResponse:
        state = request.app[state_key]
        body = await body_of(request)
        app_id, secret = text(body, "app_id"), text(body, "app_secret")
        state.record_call(app_id, request.path)
        if (faulty := await fault(request, app_id, "resend")) is not None:
            return faulty
        if app_id is None or secret is None or app_id not in state.store:
            return error(10003)
        code = state.check_credentials(app_id, secret)
        if code:
            return error(code)
        pusher.resend_soon(app_id, resend_delay)
        return answer({"code": 0, "msg": "ok"})

    async def push_event(request: web.Request) -> web.StreamResponse:
        state = request.app[state_key]
        body = await body_of(request)
        app_id, etype, tenant = text(body, "app_id"), text(body, "type"), text(body, "tenant_key")
        if app_id not in state.store or app_id is None:
            return web.json_response({"error": "app_id must name a store app"}, status=400)
        if etype == "app_ticket":
            return web.json_response({"status": await pusher.push_ticket(app_id)})
        if etype not in TENANT_EVENTS or tenant is None:
            message = "type must be app_open, app_uninstalled (with tenant_key) or app_ticket"
            return web.json_response({"error": message}, status=400)
        if etype == "app_open":
            state.store[app_id].tenants.add(tenant)
        else:
            state.store[app_id].tenants.discard(tenant)
            state.drop_tenant(app_id, tenant)
        event = {"app_id": app_id, "type": etype, "tenant_key": tenant}
        return web.json_response({"status": await pusher.push(app_id, event)})

    async def list_pushes(request: web.Request) -> web.StreamResponse:
        return web.json_response({"pushes": pusher.pushes})

    app.router.add_post(STORE_APP_PATH, app_token)
    app.router.add_post(STORE_TENANT_PATH, tenant_token)
    app.router.add_post(RESEND_PATH, resend)
    app.router.add_post("/_emulator/events", push_event)
    app.router.add_get("/_emulator/events", list_pushes)
    app.on_startup.append(pusher.start)
    app.on_cleanup.append(pusher.stop)
