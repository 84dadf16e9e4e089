"""App availability: a token that works does not mean the app works. bot/v3/info (with a
tenant token) says whether the app is enabled for the tenant (shared/lark-open-api.md, "App
availability"): `activate_status` 2 enabled, 1 disabled by the tenant, 5 licence expired,
6 plan expired; any other value is not usable and reported verbatim. An app without the bot
capability cannot be read this way: Unknown, not broken.

Asked once per refresh cycle per app (`Checker`): an answer is kept per token, so the
LarkApps sharing an app's token share one call (single-flight), and a new token — the next
cycle — asks again; a forced refresh (`kubectl lark refresh`) asks again at once. The
functions take a client, a base URL and a token, not a LarkApp: anything holding a tenant
token of an app (ClusterLarkApp) checks it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from lark_operator.openplatform import BotInfoSource, OpenPlatformError
from lark_operator.openplatform.singleflight import SingleFlight
from lark_operator.status.facts import AvailabilityFacts
from lark_operator.tokens.secret import HeldTokens
from lark_operator.tokens.storetokens import tenant_of
from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.reasons import Reason

log = logging.getLogger("lark_operator.reconcile")
R = Reason
MAX_REMEMBERED = 10_000  # answers kept (per token); beyond that the memory starts over
BY_STATUS: dict[int, tuple[Reason, str]] = {
    2: (R.AVAILABLE, "enabled"),
    1: (R.APP_DISABLED, "disabled by the tenant"),
    5: (R.LICENSE_EXPIRED, "licence expired"),
    6: (R.PLAN_EXPIRED, "plan expired"),
}


def from_bot(bot: Mapping[str, Any], app_id: str) -> AvailabilityFacts:
    status = bot.get("activate_status")
    if isinstance(status, bool) or not isinstance(status, int):
        return AvailabilityFacts(
            "Unknown", R.UNKNOWN, f"bot/v3/info answered no activate_status for {app_id}."
        )
    reason, meaning = BY_STATUS.get(status, (R.UNKNOWN, "meaning unconfirmed: not usable"))
    message = f"bot/v3/info: app {app_id} activate_status {status} ({meaning})."
    allow = bot.get("ip_white_list")
    if isinstance(allow, list) and allow:
        message += f" IP allowlist: {len(allow)} entries."
    return AvailabilityFacts(
        "True" if status == 2 else "False", reason, message, activate_status=status
    )


def from_error(e: OpenPlatformError, app_id: str) -> AvailabilityFacts:
    return AvailabilityFacts(
        "Unknown",
        R.UNKNOWN,
        f"bot/v3/info could not tell for app {app_id} (no bot capability, or: {e}).",
    )


def tenant_token(held: HeldTokens | None) -> str | None:
    """The tenant token to ask with: the self-built one, else a store app's first tenant's."""
    if held is None:
        return None
    if "tenant" in held.values:
        return held.values["tenant"]
    tenants = sorted(t for t in held.values if tenant_of(t) is not None)
    return held.values[tenants[0]] if tenants else None


async def check(
    client: BotInfoSource,
    base_url: str,
    token: str,
    app_id: str,
    *,
    request_id: str | None = None,
) -> AvailabilityFacts:
    try:
        bot = await client.bot_info(base_url, token, request_id=request_id)
    except OpenPlatformError as e:
        return from_error(e, app_id)
    return from_bot(bot, app_id)


class Checker:
    """bot/v3/info once per (base URL, token): remembered, and shared while in flight."""

    def __init__(self, client: BotInfoSource) -> None:
        self.client = client
        self._seen: dict[str, AvailabilityFacts] = {}
        self._flight: SingleFlight[str, AvailabilityFacts] = SingleFlight()

    async def check(
        self,
        base_url: str,
        token: str,
        app_id: str,
        *,
        fresh: bool = False,
        request_id: str | None = None,
    ) -> AvailabilityFacts:
        key = sha256_hex(f"{base_url} {token}")
        if not fresh and key in self._seen:
            return self._seen[key]
        facts = await self._flight.do(
            key, lambda: check(self.client, base_url, token, app_id, request_id=request_id)
        )
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen[key] = facts
        return facts


class InFlight:
    """At most one question per key at a time, each in a task of its own: a slow answer never
    holds up a refresh or a status write. `answered` is called with each answer; a failure
    is logged by its type only (never its text, which may carry a URL or a token)."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Future[None]] = {}

    def ask(
        self,
        key: Hashable,
        question: Callable[[], Awaitable[AvailabilityFacts]],
        answered: Callable[[AvailabilityFacts], None],
    ) -> None:
        if key in self._tasks:
            return

        async def one() -> None:
            try:
                facts = await question()
            except Exception as e:  # never let it take the reconciler down
                log.warning("availability check failed: %s", type(e).__name__)
                return
            finally:
                self._tasks.pop(key, None)
            answered(facts)

        self._tasks[key] = asyncio.ensure_future(one())

    def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
