"""The emulator over HTTP: each behaviour the facts file records, and the controls."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lark_operator.emulator import EmulatorHandle, running_emulator
from lark_operator.emulator.state import APP_PATH, BOT_INFO_PATH, TENANT_PATH
from tests.helpers.clock import Clock

APPS = {"cli_a": "secret-a", "cli_b": "secret-b"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def emu(clock: Clock) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(APPS, clock=clock) as h:
        yield h


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Answer:
    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    def json(self) -> Any:
        return json.loads(self.raw)


async def call(
    http: aiohttp.ClientSession,
    emu: EmulatorHandle,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    token: str | None = None,
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    async with http.request(method, emu.base_url + path, data=data, headers=headers) as r:
        return Answer(r.status, r.headers, await r.read())


async def tenant(http: aiohttp.ClientSession, emu: EmulatorHandle, app: str = "cli_a") -> Answer:
    return await call(http, emu, "POST", TENANT_PATH, {"app_id": app, "app_secret": APPS[app]})


# --- auth endpoints --------------------------------------------------------------------------


async def test_tenant_token_and_countdown(
    emu: EmulatorHandle, http: aiohttp.ClientSession, clock: Clock
) -> None:
    first = await tenant(http, emu)
    assert first.status == 200
    body = first.json()
    assert body["code"] == 0 and body["expire"] == 7200
    assert body["tenant_access_token"].startswith("t-")
    assert first.headers["Content-Type"].startswith("application/json")
    clock.now += 100
    again = (await tenant(http, emu)).json()
    assert again["tenant_access_token"] == body["tenant_access_token"]
    assert again["expire"] == 7100


async def test_reissue_inside_the_window_and_old_token_still_valid(
    emu: EmulatorHandle, http: aiohttp.ClientSession, clock: Clock
) -> None:
    old = (await tenant(http, emu)).json()["tenant_access_token"]
    clock.now += 7200 - 1800
    assert (await tenant(http, emu)).json()["tenant_access_token"] == old
    clock.now += 1
    fresh = (await tenant(http, emu)).json()
    assert fresh["tenant_access_token"] != old and fresh["expire"] == 7200
    for token in (old, fresh["tenant_access_token"]):
        info = await call(http, emu, "GET", BOT_INFO_PATH, token=token)
        assert info.status == 200 and info.json()["code"] == 0
    clock.now += 1799  # the old one has expired now, the new one has not
    expired = await call(http, emu, "GET", BOT_INFO_PATH, token=old)
    assert expired.json()["code"] == 99991663
    ok = await call(http, emu, "GET", BOT_INFO_PATH, token=fresh["tenant_access_token"])
    assert ok.json()["code"] == 0


async def test_reissue_window_and_ttl_are_configurable(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    async with running_emulator(APPS, clock=clock, token_ttl=100, reissue_window=30) as emu:
        first = (await tenant(http, emu)).json()
        assert first["expire"] == 100
        clock.now += 70
        assert (await tenant(http, emu)).json()["tenant_access_token"] == first[
            "tenant_access_token"
        ]
        clock.now += 1
        again = (await tenant(http, emu)).json()
        assert again["tenant_access_token"] != first["tenant_access_token"]


async def test_app_endpoint_returns_app_and_tenant_tokens(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    body = (
        await call(http, emu, "POST", APP_PATH, {"app_id": "cli_a", "app_secret": "secret-a"})
    ).json()
    assert body["code"] == 0 and body["expire"] == 7200
    assert body["app_access_token"].startswith("a-")
    assert body["tenant_access_token"] == (await tenant(http, emu)).json()["tenant_access_token"]
    # An app token is not a tenant token.
    info = await call(http, emu, "GET", BOT_INFO_PATH, token=body["app_access_token"])
    assert info.json()["code"] == 99991663


@pytest.mark.parametrize(
    ("body", "raw", "code"),
    [
        ({"app_id": "cli_a", "app_secret": "wrong"}, None, 10014),
        ({"app_id": "cli_nobody", "app_secret": "secret-a"}, None, 10003),
        ({"app_id": "cli_a"}, None, 10003),
        ({"app_secret": "secret-a"}, None, 10003),
        ({"app_id": 5, "app_secret": "secret-a"}, None, 10003),
        (None, b"app_id=cli_a&app_secret=secret-a", 10003),
        (None, b"[1, 2]", 10003),
    ],
)
@pytest.mark.parametrize("path", [TENANT_PATH, APP_PATH])
async def test_bad_credentials_or_body_answer_200_with_a_code(
    emu: EmulatorHandle,
    http: aiohttp.ClientSession,
    path: str,
    body: Any,
    raw: bytes | None,
    code: int,
) -> None:
    answer = await call(http, emu, "POST", path, body, raw=raw)
    assert answer.status == 200
    payload = answer.json()
    assert payload["code"] == code and payload["msg"]
    assert "tenant_access_token" not in payload


# --- bot info ------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "code"), [(None, 99991661), ("", 99991661), ("t-x", 99991663)])
async def test_bot_info_rejects_missing_and_invalid_tokens(
    emu: EmulatorHandle, http: aiohttp.ClientSession, token: str | None, code: int
) -> None:
    answer = await call(http, emu, "GET", BOT_INFO_PATH, token=token)
    assert answer.json()["code"] == code
    assert answer.status == 400


async def test_bot_info_answers_for_a_valid_tenant_token(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    token = (await tenant(http, emu, "cli_b")).json()["tenant_access_token"]
    body = (await call(http, emu, "GET", BOT_INFO_PATH, token=token)).json()
    assert body["code"] == 0
    assert body["bot"]["activate_status"] == 2 and body["bot"]["app_name"] == "cli_b"
    assert emu.calls("cli_b", BOT_INFO_PATH) == 1


# --- faults --------------------------------------------------------------------------------


async def post_fault(http: aiohttp.ClientSession, emu: EmulatorHandle, **spec: Any) -> Answer:
    return await call(http, emu, "POST", "/_emulator/faults", spec)


@pytest.mark.parametrize("code", [99991400, 99991405])
async def test_rate_limit_fault_is_429_with_headers(
    emu: EmulatorHandle, http: aiohttp.ClientSession, code: int
) -> None:
    assert (await post_fault(http, emu, code=code, ratelimit_reset=7, count=1)).status == 200
    answer = await tenant(http, emu)
    assert answer.status == 429
    assert answer.json()["code"] == code
    assert answer.headers["x-ogw-ratelimit-reset"] == "7"
    assert answer.headers["x-ogw-ratelimit-limit"] == "50"
    assert (await tenant(http, emu)).status == 200  # count 1: used up


async def test_plain_429_carries_the_rate_limit_code(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, http_status=429, count=1)
    answer = await tenant(http, emu)
    assert (answer.status, answer.json()["code"]) == (429, 99991400)
    assert "x-ogw-ratelimit-reset" in answer.headers


async def test_code_fault_answers_200_unless_told(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, code=99991401, count=1)
    await post_fault(http, emu, code=5000, http_status=500, count=1)
    first, second = await tenant(http, emu), await tenant(http, emu)
    assert (first.status, first.json()["code"]) == (200, 99991401)
    assert (second.status, second.json()["code"]) == (500, 5000)


async def test_fault_count_then_normal_and_until_delete(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, http_status=503, count=2)
    statuses = [(await tenant(http, emu)).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    await post_fault(http, emu, http_status=502)
    assert [(await tenant(http, emu)).status for _ in range(3)] == [502, 502, 502]
    listed = (await call(http, emu, "GET", "/_emulator/faults")).json()["faults"]
    assert len(listed) == 1 and listed[0]["http_status"] == 502
    assert (await call(http, emu, "DELETE", "/_emulator/faults")).status == 200
    assert (await tenant(http, emu)).status == 200


async def test_5xx_fault_has_no_business_code(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, http_status=503)
    answer = await tenant(http, emu)
    with pytest.raises(ValueError):
        answer.json()


async def test_fault_filters_by_app_and_endpoint(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, app_id="cli_b", code=99991662)
    await post_fault(http, emu, endpoint=APP_PATH, code=10013)
    assert (await tenant(http, emu, "cli_a")).json()["code"] == 0
    assert (await tenant(http, emu, "cli_b")).json()["code"] == 99991662
    app = await call(http, emu, "POST", APP_PATH, {"app_id": "cli_a", "app_secret": "secret-a"})
    assert app.json()["code"] == 10013


@pytest.mark.parametrize("mode", ["json_garbage", "html", "truncated"])
async def test_malformed_bodies_are_not_json(
    emu: EmulatorHandle, http: aiohttp.ClientSession, mode: str
) -> None:
    await post_fault(http, emu, malformed=mode)
    answer = await tenant(http, emu)
    assert answer.status == 200
    with pytest.raises(ValueError):
        answer.json()
    if mode == "html":
        assert answer.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("mode", ["wrong_types", "missing_fields"])
async def test_malformed_shapes_have_code_0_without_a_usable_token(
    emu: EmulatorHandle, http: aiohttp.ClientSession, mode: str
) -> None:
    await post_fault(http, emu, malformed=mode)
    body = (await tenant(http, emu)).json()
    assert body["code"] == 0
    assert not isinstance(body.get("tenant_access_token"), str)


async def test_reset_closes_the_connection_without_answering(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await post_fault(http, emu, reset=True, count=1)
    with pytest.raises(aiohttp.ClientError):
        await tenant(http, emu)
    assert (await tenant(http, emu)).status == 200
    assert emu.calls("cli_a", TENANT_PATH) == 2


async def test_latency_delays_the_answer(emu: EmulatorHandle, http: aiohttp.ClientSession) -> None:
    await post_fault(http, emu, latency_ms=150, count=1)
    start = time.monotonic()
    answer = await tenant(http, emu)
    assert time.monotonic() - start >= 0.15
    assert answer.json()["code"] == 0  # latency alone still answers normally


@pytest.mark.parametrize(
    "spec", [{"bogus": 1}, {"malformed": "sometimes"}, {"count": -1}, {"code": "x"}]
)
async def test_bad_fault_specs_are_rejected(
    emu: EmulatorHandle, http: aiohttp.ClientSession, spec: dict[str, Any]
) -> None:
    answer = await call(http, emu, "POST", "/_emulator/faults", spec)
    assert answer.status == 400 and answer.json()["error"]
    assert emu.state.faults == []


# --- apps, calls, tokens, clock ------------------------------------------------------------


async def test_add_and_rotate_apps(emu: EmulatorHandle, http: aiohttp.ClientSession) -> None:
    new = {"app_id": "cli_new", "app_secret": "n1"}
    assert (await call(http, emu, "POST", "/_emulator/apps", new)).status == 200
    issued = (await call(http, emu, "POST", TENANT_PATH, new)).json()["tenant_access_token"]
    rotated = {"app_id": "cli_new", "app_secret": "n2"}
    await call(http, emu, "POST", "/_emulator/apps", rotated)
    assert (await call(http, emu, "POST", TENANT_PATH, new)).json()["code"] == 10014
    assert (await call(http, emu, "POST", TENANT_PATH, rotated)).json()["code"] == 0
    # Rotation alone leaves issued tokens valid...
    assert (await call(http, emu, "GET", BOT_INFO_PATH, token=issued)).json()["code"] == 0
    # ...revoke does not.
    await call(http, emu, "POST", "/_emulator/apps", {**rotated, "revoke": True})
    assert (await call(http, emu, "GET", BOT_INFO_PATH, token=issued)).json()["code"] == 99991663


@pytest.mark.parametrize(
    "body",
    [
        {"app_id": "cli_x"},
        {"app_id": "", "app_secret": "s"},
        [1],
        {"app_id": "a", "app_secret": "s", "revoke": "yes"},
    ],
)
async def test_bad_app_bodies_are_rejected(
    emu: EmulatorHandle, http: aiohttp.ClientSession, body: Any
) -> None:
    assert (await call(http, emu, "POST", "/_emulator/apps", body)).status == 400


async def test_calls_are_counted_and_reset(
    emu: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    await tenant(http, emu, "cli_a")
    await tenant(http, emu, "cli_a")
    await call(http, emu, "POST", APP_PATH, {"app_id": "cli_b", "app_secret": "nope"})
    await call(http, emu, "POST", "/_emulator/faults", {"code": 1500, "count": 1})
    await tenant(http, emu, "cli_b")  # faulted calls count too: they are upstream traffic
    calls = (await call(http, emu, "GET", "/_emulator/calls")).json()
    assert calls == {
        "total": 4,
        "apps": {"cli_a": {TENANT_PATH: 2}, "cli_b": {APP_PATH: 1, TENANT_PATH: 1}},
    }
    assert (await call(http, emu, "DELETE", "/_emulator/calls")).status == 200
    assert (await call(http, emu, "GET", "/_emulator/calls")).json() == {"total": 0, "apps": {}}


async def test_tokens_endpoint_lists_issued_tokens(
    emu: EmulatorHandle, http: aiohttp.ClientSession, clock: Clock
) -> None:
    token = (await tenant(http, emu)).json()["tenant_access_token"]
    listed = (await call(http, emu, "GET", "/_emulator/tokens/cli_a")).json()
    assert listed["app_id"] == "cli_a"
    (entry,) = listed["tokens"]
    assert entry["token"] == token and entry["current"] and entry["valid"]
    assert entry["expires_at"] == clock.now + 7200 and entry["expire"] == 7200
    assert (await call(http, emu, "GET", "/_emulator/tokens/cli_zz")).status == 404


async def test_clock_endpoint_advances_time(
    emu: EmulatorHandle, http: aiohttp.ClientSession, clock: Clock
) -> None:
    await tenant(http, emu)
    moved = (await call(http, emu, "POST", "/_emulator/clock", {"advance": 6000})).json()
    assert moved["now"] == clock.now + 6000 and moved["offset"] == 6000
    body = (await tenant(http, emu)).json()
    assert body["expire"] == 7200  # 1200 s left < 1800: a new token
    assert (await tenant(http, emu)).json()["tenant_access_token"] == body["tenant_access_token"]
    assert (await call(http, emu, "POST", "/_emulator/clock", {"advance": -1})).status == 400
    got = (await call(http, emu, "GET", "/_emulator/clock")).json()
    assert got["offset"] == 6000
