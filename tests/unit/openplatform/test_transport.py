"""Transport and retries, through the client against the emulator: the platform's reset
windows and our own bucket, full-jitter retries of transient failures, no retry of a
final answer, and the last good token kept through all of it."""

from __future__ import annotations

from typing import Any

import pytest

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import ErrorKind, OpenPlatformClient, OpenPlatformError
from tests.helpers.clock import Clock
from tests.unit.openplatform.emulated import (
    APP,
    SECRET,
    TENANT,
    client_for,
    current,
    sample,
)

# --- rate limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [99991400, 99991405])
async def test_short_ratelimit_reset_is_waited_inside_the_call(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock, code: int
) -> None:
    waits = sample("lark_service_rate_limit_waits_total", source="upstream")
    emu.add_fault(code=code, count=1, ratelimit_reset=3)
    token = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    assert token.value == current(emu, "tenant")
    assert clock.slept == [3.0]
    assert emu.calls() == 2
    assert sample("lark_service_rate_limit_waits_total", source="upstream") == waits + 1


async def test_long_ratelimit_reset_raises_and_later_calls_wait_for_it(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock
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


async def test_local_bucket_limits_calls_per_second(emu: EmulatorHandle, clock: Clock) -> None:
    waits = sample("lark_service_rate_limit_waits_total", source="local")
    async with client_for(clock, rate_per_second=2, burst=1) as c:
        for _ in range(3):
            await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
    assert clock.slept == pytest.approx([0.5, 0.5])
    assert emu.calls() == 3
    assert sample("lark_service_rate_limit_waits_total", source="local") == waits + 2


# --- failures ------------------------------------------------------------------------------

FAULTS: dict[str, tuple[dict[str, Any], str]] = {
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
    emu: EmulatorHandle, clock: Clock, name: str
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
