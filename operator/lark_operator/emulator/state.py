"""The emulator's model of the platform: apps, issued tokens, clock, faults, call counts.

Pure (no HTTP) so that the re-issue rule and fault bookkeeping are easy to read and test.
Only what shared/lark-open-api.md records is modelled, nothing looser.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lark_operator.emulator.store import STORE_PATHS, Availability, StoreApp

TENANT_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
APP_PATH = "/open-apis/auth/v3/app_access_token/internal"
BOT_INFO_PATH = "/open-apis/bot/v3/info"
API_PATHS = (TENANT_PATH, APP_PATH, BOT_INFO_PATH, *STORE_PATHS)

# Credentials outcomes (facts table): the table lists several codes for bad credentials;
# the emulator answers 10003 ("invalid parameter") for a malformed body or an app_id it does
# not know, and 10014 ("app secret invalid") for a known app with the wrong secret.
INVALID_PARAM = 10003
SECRET_INVALID = 10014
NO_TOKEN = 99991661
INVALID_TOKEN = 99991663
RATE_LIMIT_CODES = frozenset({99991400, 99991405})

MESSAGES: dict[int, str] = {
    10003: "invalid param",
    10012: "get app access token fail",
    10013: "get tenant access token fail",
    10014: "app secret invalid",
    10015: "app secret invalid",
    99991400: "request trigger frequency limit",
    99991401: "The IP is denied access",
    99991403: "The monthly API quota is exhausted",
    99991405: "request trigger frequency limit",
    99991543: "app_id or app_secret is invalid",
    99991661: "Missing access token for authorization. Please make a request with token attached.",
    99991662: "app not in use",
    99991663: "Invalid access token for authorization. Please make a request with token attached.",
    99991664: "Invalid access token for authorization. Please make a request with token attached.",
    99991665: "Invalid tenant code.",
    99991672: "Access denied. One of the following scopes is required.",
    99991673: "app status unavailable",
    1500: "internal error",
    5000: "internal error",
    10101: "internal error",
}

MALFORMED_MODES = ("json_garbage", "html", "truncated", "wrong_types", "missing_fields")
TOKEN_PREFIX = {"tenant": "t-", "app": "a-"}


@dataclass
class IssuedToken:
    value: str
    kind: str  # "tenant" | "app"
    app_id: str
    issued_at: float
    expires_at: float
    tenant_key: str | None = None  # a store app's tenant token


@dataclass
class Fault:
    """One injected misbehaviour; applies to the next `count` matching calls (None: until
    cleared). A rate-limit code or HTTP 429 comes with x-ogw-ratelimit-* headers."""

    id: int = 0
    app_id: str | None = None
    endpoint: str | None = None  # an API path; None: every API path
    code: int | None = None
    http_status: int | None = None
    latency_ms: float = 0.0
    malformed: str | None = None  # one of MALFORMED_MODES
    reset: bool = False  # close the connection without answering
    count: int | None = None
    ratelimit_reset: float = 1.0
    ratelimit_limit: int = 50

    FIELDS = frozenset(
        {
            "app_id",
            "endpoint",
            "code",
            "http_status",
            "latency_ms",
            "malformed",
            "reset",
            "count",
            "ratelimit_reset",
            "ratelimit_limit",
        }
    )

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Validate a POST /_emulator/faults body; ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(data) - cls.FIELDS
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        f = cls()
        f.app_id = _opt(data, "app_id", str)
        f.endpoint = _opt(data, "endpoint", str)
        if f.endpoint is not None and f.endpoint not in API_PATHS:
            raise ValueError(f"endpoint must be one of {list(API_PATHS)}")
        f.code = _opt(data, "code", int)
        f.http_status = _opt(data, "http_status", int)
        if f.http_status is not None and not 100 <= f.http_status <= 599:
            raise ValueError("http_status must be between 100 and 599")
        f.latency_ms = float(_opt(data, "latency_ms", (int, float)) or 0.0)
        malformed = data.get("malformed")
        if malformed is True:
            f.malformed = "json_garbage"
        elif malformed in (None, False):
            f.malformed = None
        elif malformed in MALFORMED_MODES:
            f.malformed = malformed
        else:
            raise ValueError(f"malformed must be a boolean or one of {list(MALFORMED_MODES)}")
        f.reset = bool(_opt(data, "reset", bool))
        f.count = _opt(data, "count", int)
        if f.count is not None and f.count < 1:
            raise ValueError("count must be >= 1 (leave it out for 'until DELETE')")
        reset = _opt(data, "ratelimit_reset", (int, float))
        f.ratelimit_reset = 1.0 if reset is None else float(reset)
        limit = _opt(data, "ratelimit_limit", int)
        f.ratelimit_limit = 50 if limit is None else limit
        if f.latency_ms < 0 or f.ratelimit_reset < 0:
            raise ValueError("latency_ms and ratelimit_reset must be >= 0")
        if f.code is None and f.http_status is None and not f.malformed and not f.reset:
            if not f.latency_ms:
                raise ValueError("a fault needs code, http_status, latency_ms, malformed or reset")
        return f

    def matches(self, app_id: str | None, path: str) -> bool:
        return (self.app_id is None or self.app_id == app_id) and (
            self.endpoint is None or self.endpoint == path
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _opt(data: dict[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is None:
        return None
    # bool is an int in Python, but `"code": true` is a mistake, not code 1.
    if isinstance(value, bool) and types is not bool:
        raise ValueError(f"{name} has the wrong type")
    if not isinstance(value, types):
        raise ValueError(f"{name} has the wrong type")
    return value


class EmulatorState:
    def __init__(
        self,
        apps: dict[str, str],
        *,
        token_ttl: float = 7200,
        reissue_window: float = 1800,
        clock: Callable[[], float] | None = None,
        store_apps: dict[str, StoreApp] | None = None,
    ) -> None:
        if token_ttl <= 0 or reissue_window < 0:
            raise ValueError("token_ttl must be > 0 and reissue_window >= 0")
        self.apps = dict(apps)
        self.token_ttl = float(token_ttl)
        self.reissue_window = float(reissue_window)
        self._clock = clock or time.time
        self.offset = 0.0
        self._current: dict[tuple[str, str], IssuedToken] = {}
        self._issued: dict[str, IssuedToken] = {}
        self.faults: list[Fault] = []
        self._next_fault_id = 1
        self.calls: dict[str, Counter[str]] = {}
        self.store: dict[str, StoreApp] = dict(store_apps or {})
        self.availability: dict[str, Availability] = {}

    # --- time ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self.offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
        return self.now()

    # --- apps and tokens ------------------------------------------------------------------

    def set_app(self, app_id: str, app_secret: str, *, revoke: bool = False) -> None:
        """Add an app or rotate its secret. Tokens already issued stay valid (as on the
        platform) unless `revoke`."""
        self.apps[app_id] = app_secret
        if revoke:
            for slot in [s for s in self._current if s[0] == app_id]:
                del self._current[slot]
            for value in [v for v, t in self._issued.items() if t.app_id == app_id]:
                del self._issued[value]

    def check_credentials(self, app_id: str, app_secret: str) -> int:
        """0, or the business code for these credentials."""
        if app_id not in self.apps:
            return INVALID_PARAM
        if not secrets.compare_digest(self.apps[app_id].encode(), app_secret.encode()):
            return SECRET_INVALID
        return 0

    def issue(
        self, app_id: str, kind: str, tenant_key: str | None = None
    ) -> tuple[IssuedToken, int]:
        """The re-issue rule: the current token while at least reissue_window remains,
        otherwise a new one (the old one stays valid until its own expiry). Returns the
        token and `expire`, its remaining whole seconds. A store app's tenant tokens follow
        the rule per tenant."""
        now = self.now()
        self._purge(now)
        slot = (app_id, kind if tenant_key is None else f"{kind}:{tenant_key}")
        token = self._current.get(slot)
        if token is None or token.expires_at - now < self.reissue_window:
            token = IssuedToken(
                value=TOKEN_PREFIX[kind] + secrets.token_urlsafe(24),
                kind=kind,
                app_id=app_id,
                issued_at=now,
                expires_at=now + self.token_ttl,
                tenant_key=tenant_key,
            )
            self._current[slot] = token
            self._issued[token.value] = token
        return token, max(0, math.floor(token.expires_at - now))

    def drop_tenant(self, app_id: str, tenant_key: str) -> None:
        """A tenant uninstalled the app: its tokens stop working."""
        self._current.pop((app_id, f"tenant:{tenant_key}"), None)
        for value in [v for v, t in self._issued.items() if t.tenant_key == tenant_key]:
            if self._issued[value].app_id == app_id:
                del self._issued[value]

    def availability_of(self, app_id: str) -> Availability:
        return self.availability.setdefault(app_id, Availability())

    def lookup(self, value: str, kind: str) -> IssuedToken | None:
        """The issued token with this value, if it is of `kind` and not expired."""
        token = self._issued.get(value)
        if token is None or token.kind != kind or token.expires_at <= self.now():
            return None
        return token

    def owner_of(self, value: str) -> str | None:
        token = self._issued.get(value)
        return token.app_id if token else None

    def tokens_of(self, app_id: str) -> list[dict[str, Any]]:
        now = self.now()
        current = {t.value for (a, _), t in self._current.items() if a == app_id}
        return [
            {
                "type": t.kind,
                "token": t.value,
                "issued_at": t.issued_at,
                "expires_at": t.expires_at,
                "expire": max(0, math.floor(t.expires_at - now)),
                "valid": t.expires_at > now,
                "current": t.value in current,
                "tenant_key": t.tenant_key,
            }
            for t in sorted(self._issued.values(), key=lambda t: t.issued_at)
            if t.app_id == app_id
        ]

    def _purge(self, now: float) -> None:
        for value in [v for v, t in self._issued.items() if t.expires_at <= now]:
            del self._issued[value]

    # --- faults ---------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        fault.id = self._next_fault_id
        self._next_fault_id += 1
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, app_id: str | None, path: str) -> Fault | None:
        """The first fault matching this call, consuming one of its `count`."""
        for fault in self.faults:
            if fault.matches(app_id, path):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # --- call counting --------------------------------------------------------------------

    def record_call(self, app_id: str | None, path: str) -> None:
        self.calls.setdefault(app_id or "-", Counter())[path] += 1

    def calls_json(self) -> dict[str, Any]:
        return {
            "total": sum(sum(c.values()) for c in self.calls.values()),
            "apps": {app: dict(c) for app, c in self.calls.items()},
        }

    def calls_for(self, app_id: str, path: str | None = None) -> int:
        counter = self.calls.get(app_id, Counter())
        return counter[path] if path else sum(counter.values())

    def reset_calls(self) -> None:
        self.calls.clear()
