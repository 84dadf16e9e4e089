"""Error taxonomy of the Open Platform auth API, per shared/lark-open-api.md.

`classify` is pure so that the whole code table is pinned by unit tests. Where the facts
file and the project's old operations guides disagree, the facts file wins (99991400 is a
rate limit, not bad credentials).
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class ErrorKind(enum.Enum):
    CREDENTIALS = "credentials"  # wrong app_id/secret: fix the Secret
    CONFIG = "config"  # app state, allowlist, scopes, quota: fix in the console
    RATE_LIMITED = "rate_limited"  # wait x-ogw-ratelimit-reset
    TOKEN_INVALID = "token_invalid"  # drop the cached token, fetch a new one, retry once
    TRANSIENT = "transient"  # 5xx, network, malformed answers: back off and retry
    UNKNOWN = "unknown"  # a code not in the table: retry with backoff, report verbatim


class Classification(NamedTuple):
    kind: ErrorKind
    reason: str
    retryable: bool


_C = Classification
_K = ErrorKind

# code -> classification; `retryable` is "worth trying again later", not "retry now".
CODES: dict[int, Classification] = {
    10003: _C(_K.CREDENTIALS, "InvalidCredentials", False),  # also wrong id/secret, unpublished
    10012: _C(_K.CONFIG, "InvalidCredentials", False),  # store-app ticket flow: wrong app kind
    10013: _C(_K.CREDENTIALS, "InvalidCredentials", True),  # "maybe": app state may recover
    10014: _C(_K.CREDENTIALS, "InvalidCredentials", False),
    10015: _C(_K.CREDENTIALS, "InvalidCredentials", False),
    99991400: _C(_K.RATE_LIMITED, "RateLimited", True),
    99991401: _C(_K.CONFIG, "IPDenied", False),
    99991403: _C(_K.CONFIG, "QuotaExceeded", False),
    99991405: _C(_K.RATE_LIMITED, "RateLimited", True),  # old guides; not in the official table
    99991543: _C(_K.CREDENTIALS, "InvalidCredentials", False),
    99991661: _C(_K.CONFIG, "UnknownError", False),  # no token sent: a caller bug
    99991662: _C(_K.CONFIG, "AppDisabled", False),
    99991663: _C(_K.TOKEN_INVALID, "Expired", True),
    99991664: _C(_K.TOKEN_INVALID, "Expired", True),
    99991665: _C(_K.TOKEN_INVALID, "Expired", True),
    99991672: _C(_K.CONFIG, "ScopeMissing", False),
    99991673: _C(_K.CONFIG, "AppDisabled", False),
    1500: _C(_K.TRANSIENT, "UpstreamUnavailable", True),
    5000: _C(_K.TRANSIENT, "UpstreamUnavailable", True),
    10101: _C(_K.TRANSIENT, "UpstreamUnavailable", True),
}

RATE_LIMIT = _C(_K.RATE_LIMITED, "RateLimited", True)
TRANSIENT = _C(_K.TRANSIENT, "UpstreamUnavailable", True)
UNKNOWN = _C(_K.UNKNOWN, "UnknownError", True)


def classify(code: int | None, http_status: int | None) -> Classification:
    """What a failed call means. `code` is the body's business code (None when no body
    could be read), `http_status` None when no HTTP answer arrived at all."""
    if code is not None and code in CODES:
        return CODES[code]
    if http_status == 429:
        return RATE_LIMIT
    if code is not None:
        return UNKNOWN
    # No business code: a network failure, a gateway's 5xx/HTML page, a body we could not
    # read. The platform did not judge the request, so it is worth another try.
    return TRANSIENT


class OpenPlatformError(Exception):
    """A failed Open Platform call. The message names the code and the platform's msg,
    never the app secret or a token (callers redact `msg` before building one)."""

    def __init__(
        self,
        *,
        kind: ErrorKind,
        reason: str,
        retryable: bool,
        endpoint: str,
        code: int | None = None,
        http_status: int | None = None,
        msg: str = "",
        retry_after: float | None = None,
        label: str | None = None,
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.retryable = retryable
        self.endpoint = endpoint
        self.code = code
        self.http_status = http_status
        self.msg = msg
        self.retry_after = retry_after
        self._label = label
        super().__init__(self._describe())

    @classmethod
    def from_answer(
        cls,
        *,
        endpoint: str,
        code: int | None,
        http_status: int | None,
        msg: str,
        retry_after: float | None = None,
        label: str | None = None,
    ) -> OpenPlatformError:
        c = classify(code, http_status)
        return cls(
            kind=c.kind,
            reason=c.reason,
            retryable=c.retryable,
            endpoint=endpoint,
            code=code,
            http_status=http_status,
            msg=msg,
            retry_after=retry_after,
            label=label,
        )

    @property
    def code_label(self) -> str:
        """Bounded metrics label: the code, else 'malformed', http_<status> or 'network'."""
        if self._label is not None:
            return self._label
        if self.code is not None:
            return str(self.code)
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return "network"

    def _describe(self) -> str:
        parts = [f"{self.reason}: {self.endpoint}"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        text = ", ".join(parts)
        if self.msg:
            text += f": {self.msg}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g}s)"
        return text
