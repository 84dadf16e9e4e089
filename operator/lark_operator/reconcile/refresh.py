"""One refresh as a function: read what it needs, ask the Open Platform client, and say
what happened as an Outcome value — and `apply`, the pure step that turns an outcome into
the LarkApp's next TokenState (when to try again included).

The client serves a token from its shared cache when another LarkApp of the same app
renewed it a moment ago, or makes the one upstream call every concurrent caller joins.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lark_operator.credentials import CredentialError, resolve_base_url, secret_value
from lark_operator.models import AppCredentials, LarkAppSpec, SecretKeyRef
from lark_operator.openplatform import ErrorKind, OpenPlatformError, TokenSource
from lark_operator.reconcile.state import TokenState
from lark_operator.settings import Settings
from lark_operator.status.facts import Credentials, ErrorFacts
from lark_operator.tokens import policy
from lark_operator.tokens.secret import HeldTokens
from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.reasons import CREDENTIALS_REASONS, Reason

R = Reason
ReadSecret = Callable[[str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Issued:
    tokens: HeldTokens
    lifetime: float  # of the token(s) as the platform gave them (`expire`)
    app_secret_digest: str
    # When to refresh next, when the obtainer knows better than the earliest expiry (a
    # store app: each tenant in its own window, a failing tenant on its own backoff).
    next_refresh_at: float | None = None


@dataclass(frozen=True)
class Failed:
    kind: ErrorKind
    error: ErrorFacts
    retry_after: float | None = None
    # What this says about the credentials (None: nothing). `definite`: it replaces what
    # was known; otherwise it only fills in for credentials not known to be valid.
    credentials: Credentials | None = None
    definite: bool = True
    # The digest of the app secret this attempt read; None when it could not be read (any
    # value it comes back with is then a change); UNCHANGED when it was not read at all.
    app_secret_digest: str | None = "unchanged"


UNCHANGED = "unchanged"
Outcome = Issued | Failed


def token_types(spec: AppCredentials | LarkAppSpec) -> list[str]:
    """The token types a self-built app's Secret holds (a store app's depend on its tenants)."""
    return [t for t in ("tenant", "app") if getattr(spec.tokens, t)]


async def obtain(
    *,
    client: TokenSource,
    read_secret: ReadSecret,
    namespace: str,
    spec: AppCredentials,
    allowed_base_urls: list[str],
    lifetime: float | None,
    force: bool,
    now: float,
    request_id: str | None = None,
    held_until: float | None = None,
) -> Outcome:
    """Tokens for `spec` (a LarkApp's own app, or a ClusterLarkApp with `namespace` the
    cluster resource namespace), or why not. Nothing is sent anywhere the allowlist
    refuses, and nothing at all before the app Secret has been read and checked.
    `held_until`: expiry of the token being renewed (a token from the shared cache must
    outlive it)."""
    creds = await read_credentials(read_secret, namespace, spec, allowed_base_urls, now)
    if isinstance(creds, Failed):
        return creds
    base_url, app_secret = creds
    # Only a token fresher than the one being renewed may come from the shared cache.
    min_valid = policy.max_lead(spec.refresh.renew_before_seconds, spec.refresh.jitter, lifetime)
    if held_until is not None:  # brought forward by the capacity plan: still fresher
        min_valid = max(min_valid, held_until - now)
    values: dict[str, str] = {}
    expires: dict[str, float] = {}
    got_lifetime = 0.0
    try:
        for token_type in token_types(spec):
            tok = await client.get_token(
                base_url,
                spec.app_id,
                app_secret,
                token_type,
                min_valid_for=min_valid + 5,
                force=force,
                request_id=request_id,
            )
            values[token_type], expires[token_type] = tok.value, tok.expires_at
            got_lifetime = tok.expires_at - tok.obtained_at
    except OpenPlatformError as e:
        if e.kind is ErrorKind.TOKEN_INVALID:
            for token_type in token_types(spec):  # a cached token the platform refuses
                client.invalidate(base_url, spec.app_id, app_secret, token_type)
        return upstream_failure(e, now, sha256_hex(app_secret))
    return Issued(HeldTokens(values, expires), got_lifetime, sha256_hex(app_secret))


async def read_credentials(
    read_secret: ReadSecret,
    namespace: str,
    spec: AppCredentials,
    allowed_base_urls: list[str],
    now: float,
) -> tuple[str, str] | Failed:
    """(base URL, app secret), or the Failed that says why not (no upstream call made)."""
    try:
        base_url = resolve_base_url(spec.domain, allowed_base_urls)
        ref = spec.app_secret_ref
        secret = await read_secret(namespace, ref.name)
        app_secret = secret_value(
            secret, ref.name, ref.key, namespace=namespace, field="spec.appSecretRef"
        )
    except CredentialError as e:
        read = e.reason != R.DOMAIN_NOT_ALLOWED  # the Secret was the problem
        return config_failure(e.reason, e.message, now, digest=None if read else UNCHANGED)
    return base_url, app_secret


async def secret_digest(read_secret: ReadSecret, namespace: str, ref: SecretKeyRef) -> str | None:
    """The sha256 of the App Secret as it reads now (None: absent or unusable): compared
    with the one the last refresh used, to retry at once after a change."""
    secret = await read_secret(namespace, ref.name)
    try:
        return sha256_hex(secret_value(secret, ref.name, ref.key, namespace=namespace))
    except CredentialError:
        return None


def config_failure(reason: str, message: str, now: float, digest: str | None = UNCHANGED) -> Failed:
    """A problem on our side of the wire (no upstream call was made)."""
    facts = ErrorFacts(R(reason), message, None, now)
    credentials = Credentials(R(reason), message)
    return Failed(ErrorKind.CONFIG, facts, credentials=credentials, app_secret_digest=digest)


def upstream_failure(e: OpenPlatformError, now: float, digest: str) -> Failed:
    # The condition vocabulary is fixed; a code outside it is reported verbatim as
    # UnknownError (e.g. 9999166x "invalid token" answered by a token endpoint).
    reason = R(e.reason) if e.reason in CREDENTIALS_REASONS else R.UNKNOWN_ERROR
    kind = ErrorKind.TRANSIENT if e.kind is ErrorKind.TOKEN_INVALID else e.kind
    message = str(e)  # OpenPlatformError never carries a secret
    return Failed(
        kind,
        ErrorFacts(reason, message, e.code, now),
        e.retry_after,
        Credentials(reason, message),
        definite=kind in (ErrorKind.CREDENTIALS, ErrorKind.CONFIG),
        app_secret_digest=digest,
    )


def apply(
    token: TokenState,
    outcome: Outcome,
    *,
    spec: AppCredentials | LarkAppSpec,
    settings: Settings,
    now: float,
    rng: Callable[[], float] = random.random,
) -> TokenState:
    """The TokenState after `outcome` (pure)."""
    if isinstance(outcome, Failed):
        return _after_failure(token, outcome, settings, now, rng)
    new = outcome.tokens
    # Any token replaced (a store app's tenants change apart from its app token).
    changed = token.held is None or dict(new.values) != dict(token.held.values)
    next_at = outcome.next_refresh_at or policy.next_refresh_at(
        new.earliest_expiry,
        spec.refresh.renew_before_seconds,
        spec.refresh.jitter,
        rng,
        outcome.lifetime,
    )
    return dataclasses.replace(
        token,
        held=new,
        lifetime=outcome.lifetime,
        refreshed_at=now if changed else token.refreshed_at,
        renewed=token.renewed or (changed and token.held is not None),
        # not sooner than retry_base: a platform handing back the same token early
        next_refresh_at=max(next_at, now + settings.retry_base),
        credentials=Credentials(R.VALID, f"App {spec.app_id} authenticated."),
        last_error=None,
        failures=0,
        secret_digest=outcome.app_secret_digest,
        at_risk=None,
    )


def retry_delay(
    settings: Settings,
    kind: ErrorKind,
    failures: int,
    now: float,
    token_expires_at: float | None,
    retry_after: float | None,
    rng: Callable[[], float] = random.random,
) -> float:
    """policy.retry_delay with the operator's settings (a LarkApp, or one store tenant)."""
    return policy.retry_delay(
        kind=kind,
        failures=failures,
        now=now,
        token_expires_at=token_expires_at,
        retry_after=retry_after,
        base=settings.retry_base,
        cap=settings.retry_cap,
        credentials_cap=settings.credentials_retry_cap,
        near_expiry_cap=settings.near_expiry_retry_cap,
        rng=rng,
    )


def _after_failure(
    token: TokenState, f: Failed, settings: Settings, now: float, rng: Callable[[], float]
) -> TokenState:
    failures = token.failures + 1
    expires = token.held.earliest_expiry if token.held else None
    delay = retry_delay(settings, f.kind, failures, now, expires, f.retry_after, rng)
    credentials = token.credentials
    unsure = credentials is None or credentials.reason != R.VALID
    if f.credentials is not None and (f.definite or unsure):
        credentials = f.credentials
    digest = token.secret_digest if f.app_secret_digest == UNCHANGED else f.app_secret_digest
    return dataclasses.replace(
        token,
        failures=failures,
        last_error=f.error,
        next_refresh_at=now + delay,
        credentials=credentials,
        secret_digest=digest,
    )


def lapses(token: TokenState, now: float) -> bool:
    """No valid token, or none after the next try: a failure that lets workloads down."""
    held = token.held
    if held is None or held.earliest_expiry <= now:
        return True
    return token.next_refresh_at is not None and token.next_refresh_at >= held.earliest_expiry
