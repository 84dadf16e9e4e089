"""What the reconciler uses of the Open Platform client, as a protocol: OpenPlatformClient
is the implementation, tests hand in a scripted one (tests/unit/fakes.py) that mypy checks
against the same list."""

from __future__ import annotations

from typing import Protocol

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
