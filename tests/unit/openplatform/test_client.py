"""The client's public face against the emulator: each token type, lifetimes from `expire`,
the reissue rule, bot_info, and the arguments it refuses."""

from __future__ import annotations

import pytest

from lark_operator.emulator import EmulatorHandle
from lark_operator.openplatform import (
    BOT_INFO_PATH,
    TOKEN_PATHS,
    ErrorKind,
    OpenPlatformClient,
    OpenPlatformError,
)
from tests.helpers.clock import Clock
from tests.unit.openplatform.emulated import (
    APP,
    SECRET,
    client_for,
    current,
    emulator,
    sample,
)

# --- happy path and lifetime ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tenant", "app"])
async def test_gets_each_token_type(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock, kind: str
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


async def test_expiry_comes_from_expire_not_7200(clock: Clock) -> None:
    async with emulator(clock, token_ttl=100, reissue_window=30) as emu, client_for(clock) as c:
        first = await c.get_token(emu.base_url, APP, SECRET, "tenant")
        assert first.expires_at == clock.now + 100
        clock.now += 20
        again = await c.get_token(emu.base_url, APP, SECRET, "tenant", force=True)
        # Same token, counted down: expire 80 at the later time gives the same expiry.
        assert again.value == first.value
        assert again.expires_at == first.expires_at


async def test_reissue_rule_and_old_token_stays_valid(
    emu: EmulatorHandle, client: OpenPlatformClient, clock: Clock
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


async def test_bot_info_without_bot_capability_answer_shape(
    emu: EmulatorHandle, client: OpenPlatformClient
) -> None:
    token = await client.get_token(emu.base_url, APP, SECRET, "tenant")
    bot = await client.bot_info(emu.base_url, token.value)
    assert bot["app_name"] == APP
    assert emu.calls(APP, BOT_INFO_PATH) == 1


async def test_unsupported_token_type_is_a_programming_error(
    client: OpenPlatformClient,
) -> None:
    with pytest.raises(ValueError):
        await client.get_token("http://127.0.0.1:1", APP, SECRET, "user")
