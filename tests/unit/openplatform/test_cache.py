"""The token cache and its single-flight, through the client against the emulator: one
upstream call per key, min_valid_for, force/invalidate, a key that includes the secret."""

from __future__ import annotations

import asyncio

import pytest

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError
from tests.helpers.clock import Clock
from tests.unit.openplatform.emulated import (
    APP,
    OTHER,
    OTHER_SECRET,
    SECRET,
    sample,
)


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
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock
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
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock
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
