"""What a reconcile does, decided from state and time alone (no I/O): the one place that
says whether a refresh is due."""

from __future__ import annotations

from collections.abc import Set
from enum import StrEnum

from lark_operator.reconcile.state import TokenState, Work

# A LarkApp learned of with a status (a restart's listing): its first run picks up its
# token Secret and need not go before new LarkApps — but within this many seconds, or by
# its refresh when that comes first.
RESUME = 30.0


class Action(StrEnum):
    SUSPEND = "suspend"  # spec.suspend: stop probing, keep the token, publish
    REFRESH = "refresh"  # ask for a token (served from the shared cache when fresh enough)
    REPAIR = "repair"  # make the token Secret hold the token again (no upstream call)
    PUBLISH = "publish"  # nothing to fetch or write: bring status up to date


# `app_secret_digest` when the app Secret was not read (its value did not change, or it
# does not matter because a refresh is due anyway).
NOT_READ = "-"


def decide(
    *,
    suspended: bool,
    token: TokenState,
    pending: Set[Work],
    now: float,
    app_secret_digest: str | None = NOT_READ,
) -> Action:
    """`app_secret_digest`: the app Secret's value digest as read now (None: absent or
    unusable), when Work.CREDENTIALS is pending."""
    if suspended:
        return Action.SUSPEND
    if refresh_due(token, pending, now):
        return Action.REFRESH
    if Work.CREDENTIALS in pending and app_secret_digest != NOT_READ:
        # The app Secret changed: retry at once (skipping any backoff) if the value is not
        # the one the last refresh used, or if it is gone or unusable now.
        if app_secret_digest is None or app_secret_digest != token.secret_digest:
            return Action.REFRESH
    if Work.TOKEN_SECRET in pending:
        return Action.REPAIR
    return Action.PUBLISH


def refresh_due(token: TokenState, pending: Set[Work], now: float) -> bool:
    return (
        Work.REFRESH in pending
        or Work.STORE in pending
        or token.next_refresh_at is None
        or now >= token.next_refresh_at
        # no token and no failure streak (e.g. its Secret vanished while we were down)
        or (token.held is None and token.failures == 0)
    )


def next_wake(token: TokenState, suspended: bool, now: float) -> float | None:
    """When to look again: the refresh, or the token's expiry if that comes first (so that
    status turns Expired on time even when nothing else happens)."""
    times = []
    if token.next_refresh_at is not None and not suspended:
        times.append(token.next_refresh_at)
    if token.held is not None and token.held.earliest_expiry > now:
        times.append(token.held.earliest_expiry + 0.05)
    return min(times) if times else None


def wake_deadline(token: TokenState, when: float, renew_before: float) -> float:
    """By when the run planned for `when` should start (it orders the scheduler's queue).
    A refresh while the token is valid: by halfway through renewBefore, so that creations
    and changes (due within seconds) go first while it has slack, and it goes before them
    once it has little. Anything else: at its time."""
    held = token.held
    if held is None or held.earliest_expiry <= when:
        return when
    return max(when, held.earliest_expiry - renew_before / 2)


def first_deadline(token: TokenState, now: float) -> float | None:
    """By when the first run of a LarkApp just learned of should start (None: the
    scheduler's default for work an event set off). Only one whose status planned a
    refresh (a restart) waits, up to RESUME seconds or its refresh."""
    if token.next_refresh_at is None:
        return None
    return min(now + RESUME, max(token.next_refresh_at, now))
