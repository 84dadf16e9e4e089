"""`/health` (JSON) and `/metrics` (Prometheus text), on one port unless told otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lark_operator import metrics


class HealthServer:
    def __init__(self, owner: Any):
        self.owner = owner
        self._runners: list[web.AppRunner] = []

    async def _health(self, _: web.Request) -> web.Response:
        report = self.owner.health_report()
        return web.json_response(report, status=200 if report["status"] == "healthy" else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        # Off the event loop: at 5,000 LarkApps the page has ~70k series and takes a second
        # or two to render, which would stall every refresh for as long.
        body = await asyncio.to_thread(generate_latest, metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        s = self.owner.settings
        health_app = web.Application()
        health_app.router.add_get("/health", self._health)
        health_app.router.add_get("/healthz", self._health)
        if s.metrics_port in (None, s.health_port):
            health_app.router.add_get("/metrics", self._metrics)
            apps = [(health_app, s.health_port)]
        else:
            metrics_app = web.Application()
            metrics_app.router.add_get("/metrics", self._metrics)
            apps = [(health_app, s.health_port), (metrics_app, s.metrics_port)]
        for app, port in apps:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host="0.0.0.0", port=port).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        for r in self._runners:
            await r.cleanup()
        self._runners.clear()
