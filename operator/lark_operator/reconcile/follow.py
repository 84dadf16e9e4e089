"""The token step of a LarkApp that names a ClusterLarkApp (spec.appRef): its token comes
from the app's one refresh (reconcile/clusterapps.py), never from an upstream call of its
own.

It checks that the LarkApp's namespace may use the app (otherwise NotAllowed: nothing is
written, a token already in its Secret stays until it expires), writes the app's current
token into the LarkApp's own token Secret when the Secret holds another, and mirrors what
is known about the app — its credentials, its last error, its next refresh — into the
LarkApp's token state, so that its status says what the app's says. A ClusterLarkApp that
does not exist and one that does not admit the namespace read the same, so a LarkApp
cannot probe which apps exist elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Set

from lark_operator.models import LarkAppSpec
from lark_operator.reconcile import refresh
from lark_operator.reconcile.clusterapps import ClusterApps
from lark_operator.reconcile.state import App, TokenState, Work
from lark_operator.reconcile.tokensecret import TokenSecrets
from lark_operator.settings import Settings
from lark_operator.status.facts import Credentials, ErrorFacts
from lark_operator.tokens.secret import HeldTokens
from lark_operator.vocabulary.reasons import WRITE_FAILURES, Reason
from lark_operator.vocabulary.timefmt import rfc3339

log = logging.getLogger("lark_operator.reconcile")

CATCH_UP = 10.0  # seconds after the app's refresh a LarkApp looks by itself


class Follower:
    def __init__(
        self,
        clusters: ClusterApps,
        secrets: TokenSecrets,
        settings: Settings,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
    ):
        self.clusters, self.secrets, self.settings = clusters, secrets, settings
        self.clock, self.rng = clock, rng

    def effective(self, app: App, spec: LarkAppSpec) -> LarkAppSpec | None:
        """The spec with its ClusterLarkApp's app filled in; None while the app may not be
        used from here (or is not known)."""
        if spec.app_ref is None:
            return spec
        name = spec.app_ref.name
        cluster = self.clusters.get(name)
        if cluster is None or cluster.spec is None:
            return None
        if not self.clusters.admits(name, app.namespace):
            return None
        return spec.resolved(cluster.spec)

    async def step(self, app: App, spec: LarkAppSpec, work: Set[Work]) -> None:
        assert spec.app_ref is not None
        now, name = self.clock(), spec.app_ref.name
        verdict = self.clusters.admits(name, app.namespace)
        if verdict is None:
            return  # its namespace's labels are not known yet: woken when they are
        cluster = self.clusters.get(name)
        if not verdict or cluster is None or cluster.spec is None:
            self._refuse(app, name, now)
            return
        effective = spec.resolved(cluster.spec)
        theirs = cluster.token
        want, held = theirs.held, app.token.held
        serving = held.fingerprint() if held else _recorded(app)
        landed = False
        repair = bool(work & {Work.TOKEN_SECRET, Work.REFRESH}) or held is None
        if want is not None and (want.fingerprint() != serving or repair):
            landed = want.fingerprint() != serving
            failed = await self.secrets.write(app, effective, want, verify=not landed, now=now)
            if failed is not None:
                app.token = refresh.apply(
                    app.token, failed, spec=effective, settings=self.settings, now=now
                )
                app.write_failed = True
                return
            held = want
            if landed:
                log.info(
                    "token %s from ClusterLarkApp %s in Secret %s, valid until %s",
                    want.fingerprint(),
                    name,
                    effective.token_secret_name(app.name),
                    rfc3339(want.earliest_expiry),
                )
        app.token = mirror(app.token, theirs, held=held, landed=landed, now=now)

    def _refuse(self, app: App, name: str, now: float) -> None:
        message = (
            f"ClusterLarkApp {name!r} does not exist or does not allow namespace "
            f"{app.namespace!r} (its spec.allowedNamespaces)."
        )
        err = app.token.last_error
        if err is not None and (err.reason, err.message) == (Reason.NOT_ALLOWED, message):
            return  # said already: no new failure to count
        app.token = dataclasses.replace(
            app.token,
            credentials=Credentials(Reason.NOT_ALLOWED, message),
            last_error=ErrorFacts(Reason.NOT_ALLOWED, message, None, now),
            failures=app.token.failures + 1,
            next_refresh_at=None,
        )


def mirror(
    own: TokenState, theirs: TokenState, *, held: HeldTokens | None, landed: bool, now: float
) -> TokenState:
    """The LarkApp's token state: what its Secret holds (`held`; `landed`: just written, a
    token it did not hold before) and everything else as the ClusterLarkApp knows it."""
    return TokenState(
        held=held,
        lifetime=theirs.lifetime,
        refreshed_at=now if landed else own.refreshed_at,
        renewed=own.renewed or (landed and own.held is not None),
        next_refresh_at=theirs.next_refresh_at,
        credentials=theirs.credentials,
        last_error=theirs.last_error,
        failures=theirs.failures,
    )


def wake(token: TokenState, now: float) -> float | None:
    """When a following LarkApp must look again by itself (a fan-out wakes it otherwise):
    at its token's expiry, so that status turns Expired on time; to retry a write; and a
    little after the app's next refresh, in case that fan-out's wake-up was lost (a wake
    planned while its reconcile runs can be superseded by the plan the run ends with)."""
    times = []
    if token.next_refresh_at is not None and token.next_refresh_at + CATCH_UP > now:
        times.append(token.next_refresh_at + CATCH_UP)
    if token.held is not None and token.held.earliest_expiry > now:
        times.append(token.held.earliest_expiry + 0.05)
    err = token.last_error
    if err is not None and err.reason in WRITE_FAILURES and token.next_refresh_at is not None:
        times.append(token.next_refresh_at)
    return min(times) if times else None


def _recorded(app: App) -> str | None:
    """The fingerprint status says the token Secret holds (after a restart, when its data
    could not be read back: a templated Secret)."""
    return (app.published.status.get("token") or {}).get("fingerprint")
