"""bot/v3/info at most once per (token) — the LarkApps sharing an app's token share one
call — again for a new token or when asked fresh; a failure is Unknown, not broken."""

from __future__ import annotations

import asyncio
from typing import Any

from lark_operator.openplatform import OpenPlatformError
from lark_operator.reconcile.availability import Checker


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
