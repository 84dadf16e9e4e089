"""The client against the in-process emulator. A fake clock is shared by both, so hours of
token lifetime pass instantly; the client's sleeps (backoff, rate limits) move that clock
instead of waiting."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from lark_operator import metrics
from lark_operator.emulator import EmulatorHandle, running_emulator
from lark_operator.openplatform import (
    BOT_INFO_PATH,
    TOKEN_PATHS,
    ErrorKind,
    OpenPlatformClient,
    OpenPlatformError,
    Token,
)

APP, SECRET = "cli_alpha", "alpha-secret-value"
OTHER, OTHER_SECRET = "cli_beta", "beta-secret-value"
TENANT = TOKEN_PATHS["tenant"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def emulator(clock: FakeClock, **kw: Any) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator({APP: SECRET, OTHER: OTHER_SECRET}, clock=clock, **kw) as h:
        yield h


@asynccontextmanager
async def client_for(clock: FakeClock, **kw: Any) -> AsyncIterator[OpenPlatformClient]:
    options: dict[str, Any] = {"backoff_base": 0.05, "read_timeout": 2.0, "rng": lambda: 0.5}
    options.update(kw)
    async with OpenPlatformClient(clock=clock, sleep=clock.sleep, **options) as c:
        yield c


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[EmulatorHandle]:
    async with emulator(clock) as h:
        yield h


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[OpenPlatformClient]:
    async with client_for(clock) as c:
        yield c


def current(emu: EmulatorHandle, kind: str, app: str = APP) -> str:
    return next(t["token"] for t in emu.state.tokens_of(app) if t["current"] and t["type"] == kind)


# --- happy path and lifetime ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tenant", "app"])
async def test_gets_each_token_type(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock, kind: str
) -> None:
    calls_before = sample("lark_service_api_calls_total", endpoint=TOKEN_PATHS[kind], code="0")
    token = await client.get_token(emu.base_url, APP, SECRET, kind)
    assert token.value == current(emu, kind)
    assert token.token_type == kind
    assert token.obtained_at == clock.now
    assert token.expires_at == clock.now + 7200
    assert emu.calls(APP, TOKEN_PATHS[kind]) == 1
    after = sample("lark_service_api_calls_total", endpoint=TOKEN_PATHS[kind], code="0")
    assert after == calls_before + 1


async def test_expiry_comes_from_expire_not_7200(clock: FakeClock) -> None:
    async with emulator(clock, token_ttl=100, reissue_window=30) as emu, client_for(clock) as c:
        first = await c.get_token(emu.base_url, APP, SECRET, "tenant")
        assert first.expires_at == clock.now + 100
        clock.now += 20
        again = await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
        # Same token, counted down: expire 80 at the later time gives the same expiry.
        assert again.value == first.value
        assert again.expires_at == first.expires_at


async def test_reissue_rule_and_old_token_stays_valid(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock
) -> None:
    first = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    clock.now += 7200 - 1800  # exactly 30 minutes left: still the same token
    same = await client.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
    assert same.value == first.value
    clock.now += 1  # less than 30 minutes left: a new token
    new = await client.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
    assert new.value != first.value
    assert new.expires_at == clock.now + 7200
    bot = await client.bot_info(emu.base_url, first.value)  # the old one still works
    assert bot["activate_status"] == 2
    clock.now += 1800
    with pytest.raises(OpenPlatformError) as exc:
        await client.bot_info(emu.base_url, first.value)
    assert exc.value.kind is ErrorKind.TOKEN_INVALID and exc.value.code == 99991663
    assert first.value not in str(exc.value)


# --- cache and single-flight ---------------------------------------------------------------


async def test_fifty_concurrent_callers_make_one_upstream_call(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    joins = sample("lark_service_singleflight_joins_total")
    tokens = await asyncio.gather(
        *(client.get_token(emu.base_url, APP, SECRET, "tenant") for _ in range(50))
    )
    assert len({t.value for t in tokens}) == 1
    assert emu.calls() == 1
    assert sample("lark_service_singleflight_joins_total") == joins + 49


async def test_failure_reaches_every_joiner(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    emu.add_fault(code=99991401)
    results = await asyncio.gather(
        *(client.get_token(emu.base_url, APP, SECRET, "tenant") for _ in range(10)),
        return_exceptions=True,
    )
    assert all(isinstance(r, OpenPlatformError) and r.reason == "IPDenied" for r in results)
    assert emu.calls() == 1


async def test_cache_serves_while_min_valid_for_holds(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock
) -> None:
    first = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    hits = sample("lark_service_token_cache_hits_total")
    cached = await client.get_token(emu.base_url, APP, SECRET, "tenant", min_valid_for=600)
    assert cached is first
    assert emu.calls() == 1
    assert sample("lark_service_token_cache_hits_total") == hits + 1
    clock.now += 7000  # 200 s left < 600 wanted
    fresh = await client.get_token(emu.base_url, APP, SECRET, "tenant", min_valid_for=600)
    assert emu.calls() == 2
    assert fresh.value != first.value and fresh.expires_at == clock.now + 7200


async def test_expired_cached_token_is_not_served(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock
) -> None:
    await client.get_token(emu.base_url, APP, SECRET, "tenant")
    clock.now += 7201
    await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert emu.calls() == 2


async def test_force_and_invalidate_go_upstream(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    await client.get_token(emu.base_url, APP, SECRET, "tenant")
    await client.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
    assert emu.calls() == 2
    client.invalidate(emu.base_url, APP, SECRET, "tenant")
    assert client.cached_token(emu.base_url, APP, SECRET, "tenant") is None
    await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert emu.calls() == 3


async def test_wrong_secret_never_gets_the_cached_token(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    good = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    with pytest.raises(OpenPlatformError) as exc:
        await client.get_token(emu.base_url, APP, "not-the-secret", "tenant")
    assert exc.value.reason == "InvalidCredentials" and exc.value.code == 10014
    assert emu.calls() == 2  # it went upstream instead of reading the cache
    assert client.cached_token(emu.base_url, APP, SECRET, "tenant") is good


async def test_token_types_and_apps_are_cached_apart(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    t = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    a = await client.get_token(emu.base_url, APP, SECRET, "app")
    o = await client.get_token(emu.base_url, OTHER, OTHER_SECRET, "tenant")
    assert len({t.value, a.value, o.value}) == 3
    assert emu.calls() == 3


# --- rate limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [99991400, 99991405])
async def test_short_ratelimit_reset_is_waited_inside_the_call(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock, code: int
) -> None:
    waits = sample("lark_service_rate_limit_waits_total", source="upstream")
    emu.add_fault(code=code, count=1, ratelimit_reset=3)
    token = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert token.value == current(emu, "tenant")
    assert clock.slept == [3.0]
    assert emu.calls() == 2
    assert sample("lark_service_rate_limit_waits_total", source="upstream") == waits + 1


async def test_long_ratelimit_reset_raises_and_later_calls_wait_for_it(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: FakeClock
) -> None:
    emu.add_fault(code=99991400, count=1, ratelimit_reset=60)
    with pytest.raises(OpenPlatformError) as exc:
        await client.get_token(emu.base_url, APP, SECRET, "tenant")
    err = exc.value
    assert (err.kind, err.reason, err.retry_after, err.http_status) == (
        ErrorKind.RATE_LIMITED,
        "RateLimited",
        60.0,
        429,
    )
    assert emu.calls() == 1 and clock.slept == []
    # Inside the reset window the client does not call the platform again.
    with pytest.raises(OpenPlatformError) as again:
        await client.get_token(emu.base_url, APP, SECRET, "app")
    assert again.value.reason == "RateLimited" and 0 < (again.value.retry_after or 0) <= 60
    assert emu.calls() == 1
    clock.now += 55  # 5 s left: short enough to wait inside the call
    await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert clock.slept == [pytest.approx(5.0)]
    assert emu.calls() == 2


async def test_local_bucket_limits_calls_per_second(emu: EmulatorHandle, clock: FakeClock) -> None:
    waits = sample("lark_service_rate_limit_waits_total", source="local")
    async with client_for(clock, rate_per_second=2, burst=1) as c:
        for _ in range(3):
            await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
    assert clock.slept == pytest.approx([0.5, 0.5])
    assert emu.calls() == 3
    assert sample("lark_service_rate_limit_waits_total", source="local") == waits + 2


# --- failures ------------------------------------------------------------------------------

FAULTS = {
    "5xx": ({"http_status": 503}, "http_503"),
    "5xx-with-code": ({"http_status": 500, "code": 5000}, "5000"),
    "reset": ({"reset": True}, "network"),
    "garbage": ({"malformed": True}, "malformed"),
    "html": ({"malformed": "html"}, "malformed"),
    "html-502": ({"malformed": "html", "http_status": 502}, "http_502"),
    "truncated": ({"malformed": "truncated"}, "malformed"),
    "wrong-types": ({"malformed": "wrong_types"}, "malformed"),
    "missing-fields": ({"malformed": "missing_fields"}, "malformed"),
    "latency": ({"latency_ms": 600}, "network"),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_transient_faults_are_retried_then_upstream_unavailable(
    emu: EmulatorHandle, clock: FakeClock, name: str
) -> None:
    spec, label = FAULTS[name]
    errors = sample("lark_service_api_errors_total", endpoint=TENANT, code=label)
    async with client_for(clock, read_timeout=0.25, max_attempts=3) as c:
        good = await c.get_token(emu.base_url, APP, SECRET, "tenant")
        emu.add_fault(**spec)
        with pytest.raises(OpenPlatformError) as exc:
            await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
        err = exc.value
        assert (err.kind, err.reason, err.retryable) == (
            ErrorKind.TRANSIENT,
            "UpstreamUnavailable",
            True,
        )
        assert emu.calls() == 1 + 3
        assert len(clock.slept) == 2  # full-jitter backoff between the attempts
        assert sample("lark_service_api_errors_total", endpoint=TENANT, code=label) == errors + 3
        # The last good token is kept and still served.
        assert c.cached_token(emu.base_url, APP, SECRET, "tenant") is good
        assert await c.get_token(emu.base_url, APP, SECRET, "tenant") is good


async def test_transient_fault_that_clears_is_recovered_within_the_call(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    emu.add_fault(http_status=502, count=2)
    token = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert token.value == current(emu, "tenant")
    assert emu.calls() == 3


@pytest.mark.parametrize(
    ("secret_or_app", "code"), [((APP, "wrong-secret"), 10014), (("cli_nobody", "x"), 10003)]
)
async def test_bad_credentials_are_not_retried(
    emu: EmulatorHandle, client: OpenPlatformClient, secret_or_app: tuple[str, str], code: int
) -> None:
    app_id, secret = secret_or_app
    with pytest.raises(OpenPlatformError) as exc:
        await client.get_token(emu.base_url, app_id, secret, "tenant")
    err = exc.value
    assert (err.kind, err.reason, err.retryable, err.code) == (
        ErrorKind.CREDENTIALS,
        "InvalidCredentials",
        False,
        code,
    )
    assert err.http_status == 200  # HTTP 200 with a non-zero code
    assert emu.calls() == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [(99991401, "IPDenied"), (99991662, "AppDisabled"), (99991672, "ScopeMissing")],
)
async def test_config_errors_are_not_retried(
    emu: EmulatorHandle, client: OpenPlatformClient, code: int, reason: str
) -> None:
    emu.add_fault(code=code)
    with pytest.raises(OpenPlatformError) as exc:
        await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert exc.value.reason == reason and exc.value.code == code
    assert emu.calls() == 1


async def test_unknown_code_is_retried_and_reported_verbatim(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    emu.add_fault(code=4242)
    with pytest.raises(OpenPlatformError) as exc:
        await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert exc.value.kind is ErrorKind.UNKNOWN and exc.value.code == 4242
    assert "4242" in str(exc.value)
    assert emu.calls() == 3


async def test_bot_info_without_bot_capability_answer_shape(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    token = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    bot = await client.bot_info(emu.base_url, token.value)
    assert bot["app_name"] == APP
    assert emu.calls(APP, BOT_INFO_PATH) == 1


# --- secrets stay secret -------------------------------------------------------------------


def test_token_repr_hides_the_value() -> None:
    t = Token(value="t-very-secret-token", token_type="tenant", expires_at=2.0, obtained_at=1.0)
    assert "t-very-secret-token" not in repr(t) and "t-very-secret-token" not in str(t)
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", t.fingerprint())
    assert t.fingerprint() in repr(t)


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


async def test_unsupported_token_type_is_a_programming_error(
    client: OpenPlatformClient,
) -> None:
    with pytest.raises(ValueError):
        await client.get_token("http://127.0.0.1:1", APP, SECRET, "user")
