"""Redaction: no app secret and no token in errors or logs, whatever the platform echoes:
end to end through the client, then the functions that do it."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError
from lark_operator.openplatform.redact import describe_failure, redact
from tests.helpers.clock import Clock
from tests.unit.openplatform.emulated import APP, SECRET, TENANT, client_for


async def test_no_secret_or_token_in_errors_or_logs(
    emu: EmulatorHandle, clock: Clock, caplog: pytest.LogCaptureFixture
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


# --- the functions behind it ---------------------------------------------------------------


def test_redact_replaces_the_secret_as_sent_and_as_json_escaped() -> None:
    secret = 'pa"ss\\wörd'
    echoed = json.dumps({"app_secret": secret})  # how a gateway quoting the body shows it
    assert redact(f"got {secret} in {echoed}", secret) == 'got *** in {"app_secret": "***"}'


def test_redact_makes_one_short_printable_line() -> None:
    assert redact("a\nb\tc\x00d", limit=10) == "a b c?d"
    assert redact("x" * 20, limit=10) == "x" * 10 + "..."


def test_redact_withholds_text_where_replacing_makes_the_secret_anew() -> None:
    assert redact("aa**", "a**") == "(withheld: it contained a secret)"


def test_describe_failure_does_not_echo_what_the_upstream_sent() -> None:
    exc = aiohttp.ClientResponseError(
        RequestInfo(URL("http://x/"), "POST", CIMultiDictProxy(CIMultiDict()), URL("http://x/")),
        (),
        message=f"Invalid header value {SECRET}\nmore",
    )
    text = describe_failure(exc, None, SECRET)
    assert text == "ClientResponseError: not a valid HTTP answer (Invalid header value ***)"
    assert describe_failure(TimeoutError(), 2.5) == "timed out after 2.5s"
    disconnected = describe_failure(aiohttp.ServerDisconnectedError(SECRET), None)
    assert SECRET not in disconnected and "closed before a complete answer" in disconnected
