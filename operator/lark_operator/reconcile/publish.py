"""The one place that turns a LarkApp's state into what people see: its status (written
only when it changed), the Events two statuses differ by, its per-LarkApp metrics, and the
log lines that say how a refresh went."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from lark_operator import metrics
from lark_operator.kube import KubeAPI, KubeError
from lark_operator.probes.result import ProbeResult
from lark_operator.reconcile import rollout
from lark_operator.reconcile.refresh import Failed, Outcome, lapses
from lark_operator.reconcile.state import App, TokenState
from lark_operator.status.build import build_status
from lark_operator.status.events import transitions
from lark_operator.status.facts import Credentials, Observed, StoreFacts, TokenFacts
from lark_operator.status.model import status_patch
from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.reasons import Phase, Reason
from lark_operator.vocabulary.timefmt import rfc3339

log = logging.getLogger("lark_operator.reconcile")


class Publisher:
    def __init__(
        self, kube: KubeAPI, clock: Callable[[], float], probe_status_every: float
    ) -> None:
        self.kube, self.clock, self.probe_status_every = kube, clock, probe_status_every

    # --- status and Events ------------------------------------------------------------------
    def observed(self, app: App) -> Observed:
        spec, t = app.spec, app.token
        token = None
        refused = t.last_error is not None and t.last_error.reason == Reason.SECRET_NOT_OWNED
        if t.held is not None and spec is not None and not refused:
            token = TokenFacts(
                secret_name=spec.token_secret_name(app.name),
                expires_at=t.held.earliest_expiry,
                refreshed_at=t.refreshed_at or self.clock(),
                next_refresh_at=t.next_refresh_at,
                fingerprint=t.held.fingerprint(),
                renewed=t.renewed,
                at_risk=t.at_risk,
            )
        suspended = bool(spec and spec.suspend)
        credentials, store = t.credentials, None
        if spec is not None and spec.is_store:
            store = app.store.facts(t.held, self.clock())
            if app.store.ticket_stale and credentials and credentials.reason == Reason.VALID:
                credentials = Credentials(Reason.TICKET_MISSING, _stale_ticket(store))
        return Observed(
            generation=app.generation,
            now=self.clock(),
            suspended=suspended,
            credentials=credentials,
            store=store,
            availability=app.availability,
            token=token,
            last_error=t.last_error,
            consecutive_failures=t.failures,
            configured_probes=spec.probes.configured if spec and not suspended else (),
            probes=dict(app.published.probes),
            rollout=rollout.condition(app, spec),
        )

    async def publish(self, app: App, *, live: bool = True) -> None:
        """Write the status if it changed, post the Events of the change, export metrics.
        `live`: the LarkApp is still registered (a deleted one's series stay gone)."""
        if app.removed:
            return
        pub = app.published
        async with pub.lock:
            new = build_status(self.observed(app), pub.status).to_dict()
            pub.availability = app.availability
            patch = status_patch(new, pub.status)
            if patch is None:
                if live:
                    self._export(app, new)  # unchanged; still exported after a restart
                return
            old, pub.status = pub.status, new
            try:
                await self.kube.patch_larkapp_status(app.namespace, app.name, patch)
            except KubeError as e:
                if e.status == 404:
                    return  # deleted meanwhile
                pub.status = old
                raise
            metrics.STATUS_WRITES.inc()
            if live:
                self._export(app, new)
            for ev in transitions(old, new):
                metrics.EVENTS_EMITTED.labels(ev.reason).inc()
                try:
                    await self.kube.create_event(app.body_ref(), ev.type, ev.reason, ev.message)
                except KubeError as e:
                    log.warning("could not post Event %s: %s", ev.reason, e)

    def _export(self, app: App, status: Mapping[str, Any]) -> None:
        ns, name = app.key
        metrics.export_conditions(ns, name, status.get("conditions") or [])
        app.published.phase = metrics.count_phase(
            app.published.phase, status.get("phase") or Phase.PENDING
        )
        metrics.set_consecutive_failures(ns, name, app.token.failures)
        if app.secret.serving:
            metrics.set_token_expiry(ns, name, app.secret.serving)
        if app.spec is not None and app.spec.is_store:
            st = app.store.facts(app.token.held, self.clock())
            metrics.set_store(ns, name, st.tenants, st.ready, st.failing, st.ticket_received_at)
        a = app.availability
        metrics.set_activate_status(ns, name, a.activate_status if a else None)

    def track(self, app: App) -> None:
        """Count a LarkApp just learned of under the phase its status says."""
        phase = app.published.status.get("phase") or Phase.PENDING
        app.published.phase = metrics.count_phase(None, phase)

    def forget(self, app: App | None, key: tuple[str, str]) -> None:
        metrics.forget_larkapp(*key)
        if app is not None:
            app.published.phase = metrics.count_phase(app.published.phase, None)

    # --- probes --------------------------------------------------------------------------------
    def probe_result(self, app: App, dep: Dependency, result: ProbeResult) -> bool:
        """Metrics for every result; True when status must be written (health or reason
        changed, or the entry is older than probe_status_every)."""
        metrics.set_probe_up(app.namespace, app.name, dep, result.healthy)
        pub, now = app.published, self.clock()
        last = pub.probes.get(dep)
        stale = now - pub.probes_written_at.get(dep, 0.0) >= self.probe_status_every
        same = last is not None and (last.get("healthy"), last.get("reason")) == (
            bool(result.healthy),
            result.reason,
        )
        if same and not stale:
            return False
        pub.probes[dep] = result.to_status()
        pub.probes_written_at[dep] = now
        return True

    def probe_dropped(self, app: App, dep: Dependency | None = None) -> None:
        """A dependency no longer probed (all when None) loses its entry and series."""
        for d in (dep,) if dep else tuple(Dependency):
            app.published.probes.pop(d, None)
        metrics.forget_probes(app.namespace, app.name, dep)

    # --- how a refresh went ----------------------------------------------------------------------
    def outcome(self, before: TokenState, after: TokenState, outcome: Outcome, at: float) -> None:
        """Count and log a refresh (the reconcile's log context names the LarkApp). `at`: the
        time the refresh planned from, so the log gives the delay it chose, not what is left
        of it by now (a loaded loop would print 0.9 s for a 1 s floor)."""
        if isinstance(outcome, Failed):
            metrics.TOKEN_REFRESHES.labels("failure").inc()
            err, now = outcome.error, at
            delay = (after.next_refresh_at or now) - now
            # An on-call engineer greps ERROR (the old guides): a failure that leaves
            # workloads without a valid token, now or before the next try, is one.
            level = logging.ERROR if lapses(after, now) else logging.WARNING
            extra = {"error_code": str(err.code)} if err.code is not None else None
            log.log(
                level,
                "refresh failed (%s), attempt %d, next try in %.1fs%s: %s",
                err.reason,
                after.failures,
                delay,
                _lapse_note(after, now),
                err.message,
                extra=extra,
            )
            return
        changed = (
            before.held is None
            or after.held is None
            or dict(before.held.values) != dict(after.held.values)
        )
        metrics.TOKEN_REFRESHES.labels("success" if changed else "unchanged").inc()
        if changed and after.held is not None:
            log.info(
                "token %s until %s; next refresh %s",
                "refreshed" if after.renewed else "issued",
                rfc3339(after.held.earliest_expiry) or "-",
                rfc3339(after.next_refresh_at) or "-",
            )


def _stale_ticket(store: StoreFacts) -> str:
    return (
        f"The last app_ticket arrived at {rfc3339(store.ticket_received_at)}: the platform "
        "pushes one about hourly, so its pushes are not reaching the operator (a resend was "
        "asked). Check the event URL in the developer console (Events & Callbacks) and the "
        "route to POST /lark/events."
    )


def _lapse_note(token: TokenState, now: float) -> str:
    held = token.held
    if held is None:
        return " (no token held)"
    if held.earliest_expiry <= now:
        return f" (the token expired at {rfc3339(held.earliest_expiry)})"
    if token.next_refresh_at is not None and token.next_refresh_at >= held.earliest_expiry:
        return f" (the token expires at {rfc3339(held.earliest_expiry)}, before the next try)"
    return ""
