"""Redaction: no app secret and no token in errors or logs, whatever the platform echoes."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError
from tests.unit.openplatform.emulated import APP, SECRET, TENANT, FakeClock, client_for


async def test_no_secret_or_token_in_errors_or_logs(
    emu: EmulatorHandle, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    async with client_for(clock, read_timeout=0.25) as c:
        good = await c.get_token(emu.base_url, APP, SECRET, "tenant")
        app_token = await c.get_token(emu.base_url, APP, SECRET, "app")
        for spec in (
            {"code": 99991400, "ratelimit_reset": 1},
            {"http_status": 503},
            {"malformed": "truncated"},
            {"reset": True},
        ):
            emu.clear_faults()
            emu.add_fault(**spec, count=3)
            try:
                await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
            except OpenPlatformError as err:
                messages += [str(err), repr(err), err.msg]
        emu.clear_faults()
        for secret in ("wrong-secret-123", SECRET):
            try:
                await c.get_token(emu.base_url, APP, secret, "app", force=True)
            except OpenPlatformError as err:
                messages += [str(err), repr(err)]
        clock.now += 99999
        try:
            await c.bot_info(emu.base_url, good.value)
        except OpenPlatformError as err:
            messages += [str(err), repr(err)]
    assert messages
    everything = "\n".join(messages) + caplog.text + repr([r.__dict__ for r in caplog.records])
    for secret in (SECRET, "wrong-secret-123", good.value, app_token.value):
        assert secret not in everything
    assert "obtained" in caplog.text  # the logs were captured at all
    assert any(getattr(r, "app_id", None) == APP for r in caplog.records)


async def test_platform_msg_echoing_the_secret_is_redacted() -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"code": 10015, "msg": f"bad secret {body['app_secret']}"})

    app = web.Application()
    app.router.add_post(TENANT, echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with OpenPlatformClient() as c:
            with pytest.raises(OpenPlatformError) as exc:
                await c.get_token(f"http://{host}:{port}", APP, SECRET, "tenant")
    finally:
        await runner.cleanup()
    assert SECRET not in str(exc.value) and "***" in str(exc.value)
    assert exc.value.code == 10015
