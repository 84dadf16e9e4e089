"""One refresh of a store (marketplace) app: app_ticket -> app_access_token -> one
tenant_access_token per tenant (shared/lark-open-api.md, "Store (marketplace) apps").

- No ticket yet (or one older than ticket_stale_after): a resend is asked, at most once
  per resend interval (TicketBook); without a ticket the outcome is TicketMissing, and
  the ticket's arrival wakes the LarkApp (Work.STORE).
- 10012 (the ticket is stale or unknown): the ticket is dropped and a resend asked.
- Each tenant is refreshed inside its own re-issue window (its own expiry, a jitter of its
  own), single-flight per (app, tenant) in the client; a tenant that fails backs off on its
  own and never holds up the others, and its last good token stays in the Secret.
- Tenants no longer listed (or uninstalled, with tenants.all) leave the Secret.

`obtain` takes the spec's pieces (app id, store spec, refresh settings), not a LarkApp,
so that anything naming a store app (ClusterLarkApp) refreshes the same way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from lark_operator.models import Refresh, StoreSpec
from lark_operator.openplatform import ErrorKind, OpenPlatformError, StoreSource, Token
from lark_operator.openplatform.token import TICKET_INVALID
from lark_operator.reconcile.refresh import (
    Failed,
    Issued,
    Outcome,
    retry_delay,
    upstream_failure,
)
from lark_operator.reconcile.storeprogress import StoreProgress, TenantFailure
from lark_operator.reconcile.tickets import TicketBook
from lark_operator.settings import Settings
from lark_operator.status.facts import Credentials, ErrorFacts
from lark_operator.tokens import policy
from lark_operator.tokens.secret import HeldTokens
from lark_operator.tokens.storetokens import tenant_of, tenant_type
from lark_operator.vocabulary.digests import sha256_hex
from lark_operator.vocabulary.reasons import Reason
from lark_operator.vocabulary.timefmt import rfc3339

log = logging.getLogger("lark_operator.reconcile")
TENANT_CONCURRENCY = 8


@dataclass(frozen=True)
class StoreCall:
    """Who asks: the app and how its tokens should be kept."""

    app_id: str
    store: StoreSpec
    refresh: Refresh
    base_url: str
    app_secret: str = field(repr=False)


def _frac(name: str) -> float:
    """A stable number in [0, 1) per tenant: its own jitter, the same on every refresh."""
    return int(sha256_hex(name)[:8], 16) / 0x1_0000_0000


def due_at(expires_at: float, name: str, refresh: Refresh, lifetime: float | None) -> float:
    lead = refresh.renew_before_seconds * (1.0 + refresh.jitter * _frac(name))
    return expires_at - min(
        lead, policy.max_lead(refresh.renew_before_seconds, refresh.jitter, lifetime)
    )


def desired_tenants(store: StoreSpec, learned: frozenset[str]) -> frozenset[str]:
    return frozenset(store.tenants.keys) if store.tenants.keys else learned


async def obtain(
    call: StoreCall,
    *,
    client: StoreSource,
    book: TicketBook,
    held: HeldTokens | None,
    lifetime: float | None,
    progress: StoreProgress,
    settings: Settings,
    force: bool,
    now: float,
    request_id: str | None = None,
    rng: Callable[[], float] = random.random,
) -> Outcome:
    """Tokens for a store app, or why not; `progress` is updated in place."""
    digest = sha256_hex(call.app_secret)
    record = await book.record(call.app_id)
    if record.ticket is None:
        record = await book.reread(call.app_id)
    progress.ticket_received_at = record.received_at
    age = None if record.received_at is None else now - record.received_at
    progress.ticket_stale = age is not None and age > settings.ticket_stale_after
    if record.ticket is None or progress.ticket_stale:
        refused = await _resend(call, client, book, request_id, now, digest)
        if refused is not None:
            return refused
    if record.ticket is None:
        return _ticket_missing(call, book, now, digest, "No app_ticket has arrived yet")
    # Only a store app's own types (not a self-built token held before appType changed).
    kept = [t for t in (held.values if held else {}) if t == "app" or tenant_of(t) is not None]
    values = {t: held.values[t] for t in kept} if held else {}
    expires = {t: held.expires_at[t] for t in kept} if held else {}
    lead = policy.max_lead(call.refresh.renew_before_seconds, call.refresh.jitter, lifetime)
    app_due = (
        "app" not in expires or due_at(expires["app"], call.app_id, call.refresh, lifetime) <= now
    )
    if force or app_due or progress.refetch_app_token:
        try:
            tok = await client.store_app_token(
                call.base_url,
                call.app_id,
                call.app_secret,
                record.ticket,
                min_valid_for=0 if progress.refetch_app_token else lead + 5,
                force=force or progress.refetch_app_token,
                request_id=request_id,
            )
        except OpenPlatformError as e:
            if e.code == TICKET_INVALID:
                await book.drop_ticket(call.app_id, record.ticket)
                refused = await _resend(call, client, book, request_id, now, digest)
                return refused or _ticket_missing(
                    call, book, now, digest, "The platform refused the app_ticket (10012)"
                )
            return upstream_failure(e, now, digest)
        values["app"], expires["app"] = tok.value, tok.expires_at
        lifetime = tok.expires_at - tok.obtained_at
        progress.refetch_app_token = False
    desired = desired_tenants(call.store, record.tenants)
    progress.desired = desired
    for t in [t for t in values if (tk := tenant_of(t)) is not None and tk not in desired]:
        del values[t], expires[t]  # uninstalled or no longer listed: leaves the Secret
    for tk in [tk for tk in progress.failing if tk not in desired]:
        del progress.failing[tk]

    def tenant_due(tk: str) -> bool:
        exp = expires.get(tenant_type(tk))
        failed = progress.failing.get(tk)
        if failed is not None and failed.next_try_at > now and not force:
            return False
        return force or exp is None or due_at(exp, tk, call.refresh, lifetime) <= now

    due = sorted(tk for tk in desired if tenant_due(tk))
    results = await _tenant_tokens(call, client, values["app"], due, lead, force, request_id)
    for tk, result in zip(due, results, strict=True):
        if isinstance(result, Token):
            values[tenant_type(tk)], expires[tenant_type(tk)] = result.value, result.expires_at
            progress.failing.pop(tk, None)
            continue
        failed = progress.failing.setdefault(tk, TenantFailure())
        failed.failures += 1
        failed.reason = result.reason
        if result.kind is ErrorKind.TOKEN_INVALID:
            progress.refetch_app_token = True
        failed.next_try_at = now + retry_delay(
            settings,
            result.kind,
            failed.failures,
            now,
            expires.get(tenant_type(tk)),
            result.retry_after,
            rng,
        )
        log.warning(
            "tenant %s: refresh failed (%s), attempt %d, next try in %.0fs; the other tenants "
            "are not held up: %s",
            tk,
            result.reason,
            failed.failures,
            failed.next_try_at - now,
            result,  # OpenPlatformError text never carries a secret or a token
            extra={"error_code": str(result.code) if result.code is not None else None},
        )
    wakes = [due_at(expires["app"], call.app_id, call.refresh, lifetime)]
    wakes += [
        due_at(expires[tenant_type(tk)], tk, call.refresh, lifetime)
        for tk in desired
        if tk not in progress.failing and tenant_type(tk) in expires
    ]
    wakes += [f.next_try_at for f in progress.failing.values()]
    if progress.refetch_app_token:
        wakes.append(now)
    return Issued(
        HeldTokens(values, expires),
        lifetime or expires["app"] - now,
        digest,
        next_refresh_at=min(wakes),
    )


async def _tenant_tokens(
    call: StoreCall,
    client: StoreSource,
    app_token: str,
    tenants: list[str],
    lead: float,
    force: bool,
    request_id: str | None,
) -> list[Token | OpenPlatformError]:
    gate = asyncio.Semaphore(TENANT_CONCURRENCY)

    async def one(tk: str) -> Token | OpenPlatformError:
        async with gate:
            try:
                return await client.store_tenant_token(
                    call.base_url,
                    call.app_id,
                    call.app_secret,
                    app_token,
                    tk,
                    min_valid_for=lead + 5,
                    force=force,
                    request_id=request_id,
                )
            except OpenPlatformError as e:
                return e

    return list(await asyncio.gather(*(one(tk) for tk in tenants)))


async def _resend(
    call: StoreCall,
    client: StoreSource,
    book: TicketBook,
    request_id: str | None,
    now: float,
    digest: str,
) -> Failed | None:
    """Ask for a resend if none was asked lately; a Failed when the platform refuses it
    for a reason that is ours to fix (wrong secret, ...)."""
    if not book.may_resend(call.app_id):
        return None
    try:
        await client.resend_ticket(
            call.base_url, call.app_id, call.app_secret, request_id=request_id
        )
    except OpenPlatformError as e:
        if e.kind in (ErrorKind.CREDENTIALS, ErrorKind.CONFIG):
            return upstream_failure(e, now, digest)
    return None


def _ticket_missing(
    call: StoreCall, book: TicketBook, now: float, digest: str, what: str
) -> Failed:
    asked = book.resent_at(call.app_id)
    message = (
        f"{what} for store app {call.app_id}"
        + (f"; a resend was asked at {rfc3339(asked)}" if asked is not None else "")
        + ". The platform pushes it to the app's event URL: check that the developer "
        "console's Events & Callbacks request URL reaches the operator's POST /lark/events."
    )
    facts = ErrorFacts(Reason.TICKET_MISSING, message, None, now)
    return Failed(
        ErrorKind.TRANSIENT,
        facts,
        credentials=Credentials(Reason.TICKET_MISSING, message),
        app_secret_digest=digest,
    )
