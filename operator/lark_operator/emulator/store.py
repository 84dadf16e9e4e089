"""The emulator's model of store (marketplace) apps and of app availability: pure, like
state.py, which holds the tokens.

Store apps (shared/lark-open-api.md "Store (marketplace) apps"): each has an Encrypt Key
and a Verification Token for its callbacks, installed tenants, and the app_tickets pushed
to it. A ticket stays good while it is one of the last two pushed (a push in flight never
invalidates the one before); anything older or never pushed earns 10012.
Availability ("App availability"): per app, bot/v3/info's `activate_status` (2 enabled, 1
disabled, 5 licence expired, 6 plan expired), `ip_white_list`, and whether it has the bot
capability at all.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

STORE_APP_PATH = "/open-apis/auth/v3/app_access_token"
STORE_TENANT_PATH = "/open-apis/auth/v3/tenant_access_token"
RESEND_PATH = "/open-apis/auth/v3/app_ticket/resend"
STORE_PATHS = (STORE_APP_PATH, STORE_TENANT_PATH, RESEND_PATH)

TICKET_INVALID = 10012
TENANT_TOKEN_FAILED = 10013
INVALID_APP_TOKEN = 99991664
# bot/v3/info for an app without the bot capability: the real code is unconfirmed
# (shared/lark-open-api.md); the emulator answers this one so that clients can be tested.
NO_BOT_CAPABILITY = 10002
VALID_TICKETS = 2


@dataclass
class StoreApp:
    encrypt_key: str = field(repr=False)
    verification_token: str = field(repr=False)
    tenants: set[str] = field(default_factory=set)
    tickets: list[str] = field(default_factory=list, repr=False)  # newest last

    def new_ticket(self) -> str:
        ticket = "tk-" + secrets.token_urlsafe(24)
        self.tickets = [*self.tickets[-(VALID_TICKETS - 1) :], ticket]
        return ticket

    def ticket_valid(self, ticket: str) -> bool:
        return any(secrets.compare_digest(t.encode(), ticket.encode()) for t in self.tickets)


@dataclass
class Availability:
    activate_status: int = 2
    ip_white_list: list[str] = field(default_factory=list)
    bot: bool = True  # the app has the bot capability

    def update(self, body: dict[str, Any]) -> None:
        """From POST /_emulator/apps; ValueError names a bad field."""
        status = body.get("activate_status")
        if status is not None:
            if isinstance(status, bool) or not isinstance(status, int):
                raise ValueError("activate_status must be an integer")
            self.activate_status = status
        allow = body.get("ip_white_list")
        if allow is not None:
            if not isinstance(allow, list) or not all(isinstance(x, str) for x in allow):
                raise ValueError("ip_white_list must be a list of strings")
            self.ip_white_list = list(allow)
        bot = body.get("bot")
        if bot is not None:
            if not isinstance(bot, bool):
                raise ValueError("bot must be a boolean")
            self.bot = bot


def parse_store_app(spec: str) -> tuple[str, str, StoreApp]:
    """APP_ID:SECRET:ENCRYPT_KEY:VERIFICATION_TOKEN (the CLI's --store-app)."""
    parts = spec.split(":")
    if len(parts) != 4 or not all(parts):
        # The argument is not echoed: it holds secrets.
        raise ValueError(
            "--store-app must be APP_ID:SECRET:ENCRYPT_KEY:VERIFICATION_TOKEN, all non-empty"
        )
    app_id, secret, encrypt_key, token = parts
    return app_id, secret, StoreApp(encrypt_key, token)


def parse_tenant(spec: str) -> tuple[str, str]:
    app_id, sep, tenant_key = spec.partition(":")
    if not sep or not app_id or not tenant_key:
        raise ValueError("--tenant must be APP_ID:TENANT_KEY with both parts non-empty")
    return app_id, tenant_key
