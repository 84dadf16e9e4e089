"""POST /lark/events: the platform's event callbacks for store apps (webhook mode), on
--events-port. Every replica serves it, standbys included: a callback is verified with
the keys the LarkApps name (reconcile/storekeys.py) and its effect goes to the store
Secret in the cluster resource namespace (reconcile/tickets.py), which the leader watches.

A callback that is too large, malformed, unsigned, forged, replayed (a timestamp outside
the window, or a signature already accepted), undecryptable, for an unknown app or of a
type the operator does not handle gets a 4xx and changes nothing; it is counted in
lark_service_callbacks_rejected_total{reason} and logged with its reason only — never a
key, token, ticket or body. The answer comes within the platform's 3 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from lark_operator import metrics
from lark_operator.callbacks import (
    EVENT_TYPES,
    REJECTION_REASONS,
    Event,
    Rejected,
    ReplayGuard,
    open_event,
)
from lark_operator.reconcile.storekeys import KeyDirectory

log = logging.getLogger("lark_operator.events")

EVENTS_PATH = "/lark/events"
MAX_BODY = 64 * 1024  # a callback is a few hundred bytes
ANSWER_WITHIN = 2.5  # the platform waits 3 s
# Rejections a newer listing of the keys might turn into acceptances (a new app, new keys).
_KEY_MISSES = frozenset({"bad_signature", "undecryptable", "bad_token", "unknown_app"})


class EventSink(Protocol):
    async def ticket(self, app_id: str, ticket: str) -> None: ...

    async def tenant(self, app_id: str, event_type: str, tenant_key: str) -> None: ...


class EventsServer:
    def __init__(
        self,
        directory: KeyDirectory,
        sink: EventSink,
        *,
        port: int,
        bind_address: str = "0.0.0.0",
        max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory, self.sink = directory, sink
        self.port, self.bind_address, self.max_age, self.clock = port, bind_address, max_age, clock
        self.replay = ReplayGuard(2 * max_age)
        self._runner: web.AppRunner | None = None
        for t in EVENT_TYPES:
            metrics.CALLBACKS_ACCEPTED.labels(t)
        for r in REJECTION_REASONS:
            metrics.CALLBACKS_REJECTED.labels(r)

    async def start(self) -> None:
        """Bind (OSError when the port is taken)."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(EVENTS_PATH, self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host=self.bind_address, port=self.port).start()
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await asyncio.wait_for(self._handle(request), ANSWER_WITHIN)
        except TimeoutError:
            log.warning("callback not handled within %.1fs: answered 503", ANSWER_WITHIN)
            return web.json_response({"error": "busy, try again"}, status=503)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if (request.content_length or 0) > MAX_BODY:
                raise Rejected("too_large", f"Content-Length {request.content_length}")
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise Rejected("too_large", f"body over {MAX_BODY} bytes") from None
            event = await self._open(raw, request)
        except Rejected as r:
            metrics.CALLBACKS_REJECTED.labels(r.reason).inc()
            log.warning("callback refused (%s, HTTP %d): %s", r.reason, r.status, r.message)
            return web.json_response({"error": r.reason}, status=r.status)
        metrics.CALLBACKS_ACCEPTED.labels(event.type).inc()
        if event.type == "url_verification":
            log.info("callback URL verification answered")
            return web.json_response({"challenge": event.challenge})
        assert event.app_id is not None
        # The effect is kept in memory at once; its Secret write may go on after the answer.
        effect = asyncio.ensure_future(self._apply(event))
        try:
            await asyncio.wait_for(asyncio.shield(effect), ANSWER_WITHIN - 0.5)
        except TimeoutError:
            log.warning("callback %s for %s: still being stored", event.type, event.app_id)
        return web.json_response({"msg": "success"})

    async def _open(self, raw: bytes, request: web.Request) -> Event:
        now = self.clock()

        def attempt(keys: Any) -> Event:
            return open_event(raw, request.headers, keys, now=now, max_age=self.max_age)

        try:
            event = attempt(await self.directory.keys())
        except Rejected as r:
            if r.reason not in _KEY_MISSES or not self.directory.stale():
                raise
            event = attempt(await self.directory.keys(fresh=True))
        if event.signature is not None and not self.replay.first_time(event.signature, now):
            raise Rejected("replayed", "this signed request was accepted before")
        return event

    async def _apply(self, event: Event) -> None:
        app_id = str(event.app_id)
        if event.type == "app_ticket" and event.ticket is not None:
            log.info("app_ticket received for %s", app_id)
            await self.sink.ticket(app_id, event.ticket)
        elif event.tenant_key is not None:
            log.info("%s for %s: tenant %s", event.type, app_id, event.tenant_key)
            await self.sink.tenant(app_id, event.type, event.tenant_key)
