"""What the reconciler uses of the Open Platform client, as a protocol: OpenPlatformClient
is the implementation, tests hand in a scripted one (tests/unit/fakes.py) that mypy checks
against the same list."""

from __future__ import annotations

from typing import Any, Protocol

from lark_operator.openplatform.token import Token


class TokenSource(Protocol):
    async def get_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        token_type: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token: ...

    def invalidate(self, base_url: str, app_id: str, app_secret: str, token_type: str) -> None: ...


class StoreSource(Protocol):
    """What a store app's refresh uses (reconcile/storeapp.py)."""

    async def store_app_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_ticket: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token: ...

    async def store_tenant_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_token: str,
        tenant_key: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token: ...

    def invalidate_store(self, base_url: str, app_id: str, app_secret: str) -> None: ...

    async def resend_ticket(
        self, base_url: str, app_id: str, app_secret: str, *, request_id: str | None = None
    ) -> None: ...


class BotInfoSource(Protocol):
    """What the availability check uses (reconcile/availability.py)."""

    async def bot_info(
        self, base_url: str, tenant_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]: ...


class PlatformAPI(TokenSource, StoreSource, BotInfoSource, Protocol):
    """Everything the reconciler uses of the client."""
