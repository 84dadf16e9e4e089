"""bot/v3/info at most once per (token) — the LarkApps sharing an app's token share one
call — again for a new token or when asked fresh; a failure is Unknown, not broken."""

from __future__ import annotations

import asyncio
from typing import Any

from lark_operator.openplatform import OpenPlatformError
from lark_operator.reconcile.availability import Checker
from lark_operator.reconcile.reconciler import Reconciler
from lark_operator.settings import Settings
from tests.helpers.clock import Clock
from tests.unit.fakes import FakeKube, ScriptedClient


class Bot:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.status = 2
        self.code = 0

    async def bot_info(self, base_url: str, token: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(token)
        await asyncio.sleep(0.01)
        if self.code:
            raise OpenPlatformError.from_answer(
                endpoint="/open-apis/bot/v3/info", code=self.code, http_status=400, msg="no bot"
            )
        return {"activate_status": self.status}


async def test_one_call_per_token_shared_and_remembered() -> None:
    bot = Bot()
    checker = Checker(bot)  # type: ignore[arg-type]
    many = await asyncio.gather(*(checker.check("https://x", "t-1", "cli_a") for _ in range(50)))
    assert bot.calls == ["t-1"] and {f.reason for f in many} == {"Available"}
    bot.status = 1
    assert (await checker.check("https://x", "t-1", "cli_a")).reason == "Available"  # same cycle
    assert (await checker.check("https://x", "t-2", "cli_a")).reason == "AppDisabled"  # next
    assert (await checker.check("https://x", "t-1", "cli_a", fresh=True)).reason == "AppDisabled"
    assert bot.calls == ["t-1", "t-2", "t-1"]


async def test_no_bot_capability_is_unknown() -> None:
    bot = Bot()
    bot.code = 10002
    facts = await Checker(bot).check("https://x", "t-1", "cli_a")  # type: ignore[arg-type]
    assert (facts.status, facts.reason, facts.activate_status) == ("Unknown", "Unknown", None)
    assert "10002" in facts.message and "t-1" not in facts.message


# --- as the reconciler asks: beside the Secret write, published in the same status write ----


class SlowKube(FakeKube):
    """The apiserver's latency on the two writes of a first refresh (real time, short)."""

    def __init__(self, secret_write: float, status_write: float) -> None:
        super().__init__()
        self.secret_write, self.status_write = secret_write, status_write

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(self.secret_write)
        return await super().create_secret(ns, body)

    async def patch_larkapp_status(
        self, ns: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(self.status_write)
        return await super().patch_larkapp_status(ns, name, patch)


class SlowBot(ScriptedClient):
    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__(clock)
        self.delay = delay

    async def bot_info(self, base_url: str, tenant_token: str, **kw: Any) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        return {"activate_status": 2}


def _says_available(patch: dict[str, Any]) -> bool:
    conds = (patch.get("status") or patch).get("conditions") or []
    return any(c.get("type") == "AppAvailable" and c.get("status") == "True" for c in conds)


async def _first_refresh(kube: FakeKube, client: ScriptedClient) -> list[dict[str, Any]]:
    """Create a LarkApp on a running reconciler; the status patches until AppAvailable."""
    clock = client.clock
    kube.put_app_secret("ns", "lark", {"appSecret": "the-secret"})
    ctl = Reconciler(kube, client, Settings(), clock=clock, rng=lambda: 0.5)
    await ctl.start()
    try:
        ctl.observe(
            {
                "metadata": {"namespace": "ns", "name": "app", "uid": "u-1", "generation": 1},
                "spec": {"appId": "cli_unit01", "appSecretRef": {"name": "lark"}},
            }
        )
        for _ in range(300):
            if any(_says_available(p) for *_, p in kube.status_patches):
                break
            await asyncio.sleep(0.01)
        return [p for *_, p in kube.status_patches]
    finally:
        await ctl.stop()


async def test_an_answer_during_the_secret_write_is_in_the_first_status_write() -> None:
    """A burst of creations costs one reconcile and one status write per LarkApp, not a
    second round for AppAvailable: it is asked while the token Secret is written."""
    clock = Clock()
    patches = await _first_refresh(SlowKube(0.05, 0.0), SlowBot(clock, 0.01))
    assert patches and _says_available(patches[0]), patches


async def test_an_answer_during_the_status_write_is_published_next() -> None:
    """An answer that lands while the first status write is on its way (the reconcile is
    still running, so nothing else picks it up) is not lost: a write after it says it."""
    clock = Clock()
    patches = await _first_refresh(SlowKube(0.0, 0.1), SlowBot(clock, 0.03))
    assert not _says_available(patches[0]), "this case is about an answer after the build"
    assert any(_says_available(p) for p in patches[1:]), patches
