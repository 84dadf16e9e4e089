"""aiohttp application of the emulator: the platform's API paths plus /_emulator/ controls.

Answers like the platform (shared/lark-open-api.md): HTTP 200 with a non-zero `code` for
bad credentials or a bad body; `expire` = remaining seconds of the current token; HTTP 429
with x-ogw-ratelimit-* headers for rate limits. bot/v3/info answers HTTP 400 for a missing
or invalid token (the HTTP status there is unconfirmed; clients must read `code` anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lark_operator.emulator import storeapi
from lark_operator.emulator.state import (
    APP_PATH,
    BOT_INFO_PATH,
    INVALID_PARAM,
    INVALID_TOKEN,
    MESSAGES,
    NO_TOKEN,
    RATE_LIMIT_CODES,
    TENANT_PATH,
    EmulatorState,
    Fault,
)
from lark_operator.emulator.store import NO_BOT_CAPABILITY, StoreApp

log = logging.getLogger("lark_operator.emulator")

STATE = web.AppKey("state", EmulatorState)
PUSHER = web.AppKey("pusher", storeapi.Pusher)
JSON = "application/json; charset=utf-8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    apps: dict[str, str],
    token_ttl: float = 7200,
    reissue_window: float = 1800,
    clock: Callable[[], float] | None = None,
    *,
    store_apps: dict[str, tuple[str, StoreApp]] | None = None,
    tenants: list[tuple[str, str]] = (),  # type: ignore[assignment]
    event_url: str | None = None,
    ticket_interval: float = 3600.0,
    resend_delay: float = 0.2,
) -> web.Application:
    """`store_apps`: app_id -> (app secret, StoreApp); `tenants`: (app_id, tenant_key)."""
    app = web.Application()
    store = {a: s for a, (_, s) in (store_apps or {}).items()}
    for app_id, tenant_key in tenants:
        if app_id not in store:
            raise ValueError(f"--tenant names {app_id}, which is not a --store-app")
        store[app_id].tenants.add(tenant_key)
    all_apps = {**apps, **{a: secret for a, (secret, _) in (store_apps or {}).items()}}
    app[STATE] = EmulatorState(
        all_apps,
        token_ttl=token_ttl,
        reissue_window=reissue_window,
        clock=clock,
        store_apps=store,
    )
    app[PUSHER] = storeapi.Pusher(app[STATE], event_url, ticket_interval)
    storeapi.register(
        app,
        STATE,
        app[PUSHER],
        answer=_answer,
        error=_error,
        fault=lambda r, app_id, kind: _apply_fault(
            r, r.app[STATE].take_fault(app_id, r.path), kind
        ),
        resend_delay=resend_delay,
    )
    app.router.add_post(TENANT_PATH, _token_handler("tenant"))
    app.router.add_post(APP_PATH, _token_handler("app"))
    app.router.add_get(BOT_INFO_PATH, _bot_info)
    app.router.add_post("/_emulator/faults", _add_fault)
    app.router.add_get("/_emulator/faults", _list_faults)
    app.router.add_delete("/_emulator/faults", _clear_faults)
    app.router.add_post("/_emulator/apps", _set_app)
    app.router.add_get("/_emulator/calls", _get_calls)
    app.router.add_delete("/_emulator/calls", _reset_calls)
    app.router.add_get("/_emulator/tokens/{app_id}", _get_tokens)
    app.router.add_get("/_emulator/clock", _get_clock)
    app.router.add_post("/_emulator/clock", _advance_clock)
    return app


def _answer(payload: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type=None,
        headers={"Content-Type": JSON, **headers},
    )


def _error(code: int, status: int = 200) -> web.Response:
    return _answer({"code": code, "msg": MESSAGES.get(code, "emulated error")}, status)


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


# --- platform API ---------------------------------------------------------------------------


def _token_handler(kind: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        body = await _json_body(request)
        app_id = body.get("app_id") if isinstance(body, dict) else None
        app_id = app_id if isinstance(app_id, str) else None
        state.record_call(app_id, request.path)
        faulty = await _apply_fault(request, state.take_fault(app_id, request.path), kind)
        if faulty is not None:
            return faulty
        secret = body.get("app_secret") if isinstance(body, dict) else None
        if app_id is None or not isinstance(secret, str) or not app_id or not secret:
            return _error(INVALID_PARAM)
        code = state.check_credentials(app_id, secret)
        if not code and app_id in state.store:
            code = INVALID_PARAM  # a store app has no /internal tokens (ticket flow only)
        if code:
            log.info("%s %s: code %d", request.path, app_id, code)
            return _error(code)
        token, expire = state.issue(app_id, kind)
        payload: dict[str, Any] = {"code": 0, "msg": "ok", f"{kind}_access_token": token.value}
        if kind == "app":
            # app_access_token/internal also hands out the tenant token (facts table).
            payload["tenant_access_token"] = state.issue(app_id, "tenant")[0].value
        payload["expire"] = expire
        return _answer(payload)

    return handle


async def _bot_info(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    value = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
    app_id = state.owner_of(value) if value else None
    state.record_call(app_id, request.path)
    faulty = await _apply_fault(request, state.take_fault(app_id, request.path), "bot")
    if faulty is not None:
        return faulty
    if not value:
        return _error(NO_TOKEN, 400)
    token = state.lookup(value, "tenant")
    if token is None:
        return _error(INVALID_TOKEN, 400)
    availability = state.availability_of(token.app_id)
    if not availability.bot:
        msg = "the app has no bot capability (emulated: the real code is unconfirmed)"
        return _answer({"code": NO_BOT_CAPABILITY, "msg": msg}, 400)
    open_id = "ou_" + hashlib.sha256(token.app_id.encode()).hexdigest()[:32]
    bot = {
        "activate_status": availability.activate_status,
        "app_name": token.app_id,
        "avatar_url": "",
        "ip_white_list": list(availability.ip_white_list),
        "open_id": open_id,
    }
    return _answer({"code": 0, "msg": "ok", "bot": bot})


async def _apply_fault(
    request: web.Request, fault: Fault | None, kind: str
) -> web.StreamResponse | None:
    """The faulty answer, or None to answer normally (no fault, or latency only)."""
    if fault is None:
        return None
    log.info("%s: applying fault %d", request.path, fault.id)
    if fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault.reset:
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client; aiohttp drops a response to an aborted transport.
        return web.Response(status=500)
    if fault.malformed:
        return _malformed(fault.malformed, fault.http_status or 200, kind)
    code = fault.code
    status = fault.http_status
    if code is None and status == 429:
        code = 99991400  # the gateway's 429 carries the rate-limit code
    if code is None and status is not None:
        # A gateway error without a business code, as a proxy in front would send it.
        return web.Response(status=status, text=f"{status} emulated gateway error")
    if code is None:
        return None
    if code in RATE_LIMIT_CODES and status is None:
        status = 429
    headers = {}
    if status == 429 or code in RATE_LIMIT_CODES:
        headers = {
            "x-ogw-ratelimit-limit": str(fault.ratelimit_limit),
            "x-ogw-ratelimit-reset": f"{fault.ratelimit_reset:g}",
        }
    return _answer(
        {"code": code, "msg": MESSAGES.get(code, "emulated error")}, status or 200, **headers
    )


def _malformed(mode: str, status: int, kind: str) -> web.Response:
    field = "bot" if kind == "bot" else f"{kind}_access_token"
    if mode == "html":
        page = "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"
        return web.Response(status=status, text=page, content_type="text/html")
    if mode == "truncated":
        whole = json.dumps({"code": 0, "msg": "ok", field: "t-cut-short", "expire": 7200})
        return web.Response(
            status=status,
            body=whole[: len(whole) // 2].encode(),
            content_type=None,
            headers={"Content-Type": JSON},
        )
    if mode == "wrong_types":
        return _answer({"code": 0, "msg": "ok", field: 12345, "expire": "7200"}, status)
    if mode == "missing_fields":
        return _answer({"code": 0, "msg": "ok"}, status)
    return web.Response(
        status=status, body=b"\x00\xffgarbage{{", content_type=None, headers={"Content-Type": JSON}
    )


# --- controls -------------------------------------------------------------------------------


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _add_fault(request: web.Request) -> web.StreamResponse:
    try:
        fault = Fault.from_json(await _json_body(request))
    except ValueError as exc:
        return _bad_request(str(exc))
    request.app[STATE].add_fault(fault)
    return web.json_response({"fault": fault.to_json()})


async def _list_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response({"faults": [f.to_json() for f in request.app[STATE].faults]})


async def _clear_faults(request: web.Request) -> web.StreamResponse:
    request.app[STATE].clear_faults()
    return web.json_response({"faults": []})


async def _set_app(request: web.Request) -> web.StreamResponse:
    """{app_id, app_secret?, revoke?, activate_status?, ip_white_list?, bot?}: add or rotate
    an app (app_secret), and/or set what bot/v3/info answers for it."""
    state = request.app[STATE]
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object {app_id, app_secret?, ...}")
    app_id, secret, revoke = body.get("app_id"), body.get("app_secret"), body.get("revoke", False)
    if not isinstance(app_id, str) or not app_id:
        return _bad_request("app_id must be a non-empty string")
    if secret is None and app_id not in state.apps:
        return _bad_request("app_secret is needed to add an app")
    if secret is not None and (not isinstance(secret, str) or not secret):
        return _bad_request("app_secret must be a non-empty string")
    if not isinstance(revoke, bool):
        return _bad_request("revoke must be a boolean")
    try:
        state.availability_of(app_id).update(body)
    except ValueError as exc:
        return _bad_request(str(exc))
    if secret is not None:
        state.set_app(app_id, secret, revoke=revoke)
    availability = state.availability_of(app_id)
    return web.json_response(
        {
            "app_id": app_id,
            "revoked": revoke,
            "activate_status": availability.activate_status,
            "ip_white_list": availability.ip_white_list,
            "bot": availability.bot,
        }
    )


async def _get_calls(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].calls_json())


async def _reset_calls(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset_calls()
    return web.json_response(request.app[STATE].calls_json())


async def _get_tokens(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    app_id = request.match_info["app_id"]
    if app_id not in state.apps:
        return web.json_response({"error": f"unknown app {app_id}"}, status=404)
    return web.json_response(
        {"app_id": app_id, "now": state.now(), "tokens": state.tokens_of(app_id)}
    )


async def _get_clock(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    return web.json_response({"now": state.now(), "offset": state.offset})


async def _advance_clock(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _json_body(request)
    seconds = body.get("advance") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _bad_request('body must be {"advance": seconds >= 0}')
    state.advance(float(seconds))
    return web.json_response({"now": state.now(), "offset": state.offset})
