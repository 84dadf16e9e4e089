"""`/health`, `/livez`, `/readyz` (JSON) and `/metrics` (Prometheus text), on one port
unless told otherwise. The server knows nothing of the operator: it calls the report
functions it was given.

- `/livez` (the liveness probe): the process can go on — its event loop answers and nothing
  it needs has died. Failing it restarts the container, so it fails only for that.
- `/readyz` (the readiness probe): the replica does its job — for the acting replica, the
  watches are established and the reconciler runs; a standby is ready (waiting for the
  Lease is its job, and a standby marked unready would stall every rolling update).
- `/health`: the whole report (what `kubectl lark`, docs and people read); 503 when the
  acting replica is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lark_operator import metrics

Report = Callable[[], dict[str, Any]]


class Reports:
    """What each endpoint serves: dicts with "status" and, for the probes, whether they pass."""

    def __init__(self, health: Report, live: Report, ready: Report):
        self.health, self.live, self.ready = health, live, ready


class HealthServer:
    def __init__(
        self,
        reports: Reports,
        *,
        health_port: int,
        metrics_port: int | None = None,
        bind_address: str = "0.0.0.0",
    ):
        self.reports = reports
        self.health_port, self.metrics_port = health_port, metrics_port
        self.bind_address = bind_address
        self._runners: list[web.AppRunner] = []

    async def _health(self, _: web.Request) -> web.Response:
        report = self.reports.health()
        return web.json_response(report, status=200 if report["status"] == "healthy" else 503)

    async def _live(self, _: web.Request) -> web.Response:
        report = self.reports.live()
        return web.json_response(report, status=200 if report["live"] else 503)

    async def _ready(self, _: web.Request) -> web.Response:
        report = self.reports.ready()
        return web.json_response(report, status=200 if report["ready"] else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        # Off the event loop: at 5,000 LarkApps the page has ~70k series and takes a second
        # or two to render, which would stall every refresh for as long.
        body = await asyncio.to_thread(generate_latest, metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Bind (OSError when a port is taken: the caller says so and exits)."""
        health_app = web.Application()
        health_app.router.add_get("/health", self._health)
        health_app.router.add_get("/healthz", self._health)
        health_app.router.add_get("/livez", self._live)
        health_app.router.add_get("/readyz", self._ready)
        if self.metrics_port in (None, self.health_port):
            health_app.router.add_get("/metrics", self._metrics)
            apps = [(health_app, self.health_port)]
        else:
            metrics_app = web.Application()
            metrics_app.router.add_get("/metrics", self._metrics)
            apps = [(health_app, self.health_port), (metrics_app, self.metrics_port)]
        try:
            for app, port in apps:
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                self._runners.append(runner)
                await web.TCPSite(runner, host=self.bind_address, port=port).start()
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        for r in self._runners:
            await r.cleanup()
        self._runners.clear()
