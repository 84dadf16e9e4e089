"""The walk of one reconcile, top to bottom through named steps, and the entry points kopf
reaches through app/handlers.py (observe, remove, secret_changed).

    resume (once after a start) -> decide -> suspend | sync probes -> refresh | repair
    (or, for a LarkApp naming a ClusterLarkApp, follow the app's one refresh)
    -> roll the workloads named -> publish -> schedule the next wake

Each step lives in its own module; this one only wires them and keeps the order. The
ClusterLarkApps' own refreshes run in reconcile/clusterapps.py, which wakes the LarkApps
that use them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import traceback
import uuid
from collections.abc import Hashable, Mapping
from typing import Any

from pydantic import ValidationError

from lark_operator import metrics
from lark_operator.credentials import CredentialError, resolve_base_url
from lark_operator.kube import KubeAPI, KubeError
from lark_operator.logs import current_context, log_context
from lark_operator.models import LarkAppSpec
from lark_operator.openplatform import OpenPlatformError, PlatformAPI
from lark_operator.probes.result import ProbeResult
from lark_operator.probes.scheduler import ProbeScheduler
from lark_operator.reconcile import availability, follow, refresh, storeapp
from lark_operator.reconcile.clusterapps import ClusterApps
from lark_operator.reconcile.decide import (
    NOT_READ,
    Action,
    decide,
    first_deadline,
    next_wake,
    refresh_due,
    wake_deadline,
)
from lark_operator.reconcile.follow import Follower
from lark_operator.reconcile.index import SecretIndex
from lark_operator.reconcile.planner import RefreshPlanner
from lark_operator.reconcile.probelink import ProbeLink
from lark_operator.reconcile.publish import Publisher
from lark_operator.reconcile.refresh import Failed, Issued, Outcome
from lark_operator.reconcile.registry import Registry
from lark_operator.reconcile.rollout import Rollouts
from lark_operator.reconcile.scheduler import Scheduler
from lark_operator.reconcile.state import App, Key, Work
from lark_operator.reconcile.tickets import TicketBook
from lark_operator.reconcile.tokensecret import TokenSecrets, target_refused, write_failure
from lark_operator.settings import Settings
from lark_operator.status.facts import AvailabilityFacts, Credentials
from lark_operator.tokens import policy
from lark_operator.tokens.secret import HeldTokens
from lark_operator.tokens.store import SecretNotOwned
from lark_operator.vocabulary.dependencies import Dependency
from lark_operator.vocabulary.names import REFRESH_HANDLED_ANNOTATION
from lark_operator.vocabulary.reasons import WRITE_FAILURES, Reason
from lark_operator.vocabulary.timefmt import rfc3339

log = logging.getLogger("lark_operator.reconcile")


class Reconciler:
    def __init__(
        self,
        kube: KubeAPI,
        client: PlatformAPI,
        settings: Settings,
        *,
        probes: ProbeScheduler | None = None,
        tickets: TicketBook | None = None,
        cluster_namespace: str = "default",
        clock: Any = time.time,
        rng: Any = random.random,
    ):
        self.kube, self.client, self.settings = kube, client, settings
        self.tickets = tickets
        self.availability, self.asking = availability.Checker(client), availability.InFlight()
        if tickets is not None:
            tickets.listeners.append(self.store_changed)
        self.clock, self.rng = clock, rng
        self.index = SecretIndex(kube.get_secret)
        self.registry = Registry(self.index)
        self.publisher = Publisher(kube, clock, settings.probe_status_every)
        self.secrets = TokenSecrets(kube)
        self.probes = ProbeLink(probes, self.index, self.on_probe_result)
        self.scheduler = Scheduler(
            self._run, max_concurrency=settings.max_concurrent_refreshes, clock=clock
        )
        self.clusters = ClusterApps(
            kube,
            client,
            settings,
            self.index,
            namespace=cluster_namespace,
            wake_user=self.scheduler.now,
            clock=clock,
            rng=rng,
        )
        self.follow = Follower(self.clusters, self.secrets, settings, clock, rng)
        self.rollouts = Rollouts(kube, clock)
        self.planner = RefreshPlanner(
            self.registry, self.scheduler, pinned=settings.refresh_capacity, clock=clock, rng=rng
        )

    async def start(self) -> None:
        await self.scheduler.start()
        await self.clusters.start()
        await self.planner.start()

    async def stop(self) -> None:
        self.asking.stop()
        await self.clusters.stop()
        await self.planner.stop()
        await self.scheduler.stop()

    def health(self) -> dict[str, Any]:
        counts = {"larkapps": len(self.registry.apps), "clusterlarkapps": len(self.clusters.apps)}
        rate = round(self.planner.throughput.rate, 1)
        return {**self.scheduler.health(), **counts, "refreshCapacity": rate}

    # --- what kopf reports --------------------------------------------------------------
    def observe(self, body: Mapping[str, Any], refresh_request: str | None = None) -> None:
        meta = body.get("metadata") or {}
        key = (meta["namespace"], meta["name"])
        new = key not in self.registry.apps
        app = self.registry.observe(body, refresh_request)
        if new:
            self.publisher.track(self.registry.apps[key])
        if app is not None:
            ref = app.spec.app_ref if app.spec is not None else None
            self.clusters.use(key, ref.name if ref is not None else None)
            deadline = first_deadline(app.token, self.clock()) if new else None
            self.scheduler.now(key, deadline=deadline)

    async def remove(self, body: Mapping[str, Any]) -> None:
        """The LarkApp is being deleted: stop everything for it, then let go of its token
        Secret(s) per deletionPolicy (only what is ours: tokens/store.py). Called from the
        finalizer and again for the DELETED event: the second finds nothing left to do."""
        meta = body.get("metadata") or {}
        key: Key = (meta["namespace"], meta["name"])
        app = self.registry.pop(key)
        if app is not None:
            # A reconcile still running must not write the token Secret back after it is
            # deleted below: it stops at its next write, and we wait for it (bounded).
            app.removed = True
            for _ in range(200):
                if not self.scheduler.running(key):
                    break
                await asyncio.sleep(0.05)
        self.scheduler.forget(key)
        self.clusters.use(key, None)
        self.probes.forget(key)
        self.publisher.forget(app, key)
        try:
            spec = LarkAppSpec.parse(body.get("spec"))
        except ValidationError:
            return
        names = {spec.token_secret_name(key[1]), *(app.secret.old_names if app else ())}
        for name in sorted(names):
            await self.secrets.release(key[0], key[1], name, meta.get("uid"), spec)

    def secret_changed(self, event: str, namespace: str, name: str, rv: str | None) -> None:
        """From the metadata-only Secret watch. SYNC events (the initial listing) only
        record; they must not set off work for every LarkApp at start-up."""
        if event == "SYNC":
            return
        for app in self.registry.secret_changed(event, namespace, name, rv):
            self.scheduler.now(app.key)
        self.clusters.secret_changed(event, namespace, name)

    def store_changed(self, app_id: str) -> None:
        """A store app's ticket or tenants changed (a callback here, or on another replica):
        its LarkApps get what is due or missing now."""
        for app in self.registry.apps.values():
            if app.spec is not None and app.spec.is_store and app.spec.app_id == app_id:
                app.pending.add(Work.STORE)
                self.scheduler.now(app.key)

    async def on_probe_result(self, key: Hashable, result: ProbeResult) -> None:
        app = self.registry.lookup(key)
        if app is None or app.spec is None or app.spec.suspend:
            return
        if self.publisher.probe_result(app, Dependency(result.dependency), result):
            await self.publisher.publish(app)

    # --- one reconcile -----------------------------------------------------------------------
    async def _run(self, key: Key) -> None:
        app = self.registry.get(key)
        if app is None or app.spec is None:
            return
        rid = uuid.uuid4().hex[:12]
        ref = app.spec.app_ref
        app_id = app.spec.app_id or (f"ClusterLarkApp/{ref.name}" if ref else None)
        with log_context(request_id=rid, namespace=key[0], name=key[1], app_id=app_id):
            try:
                app.write_failed = False
                with metrics.RECONCILE_DURATION.time():
                    action = await self.reconcile(app)
                self.planner.done(action is Action.REFRESH)
                # A write the API server refused is in status, and a failed reconcile.
                metrics.RECONCILES.labels("error" if app.write_failed else "ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                metrics.RECONCILES.labels("error").inc()
                log.error("reconcile failed in %s: %s: %s", _where(e), type(e).__name__, _safe(e))
                self.scheduler.at(key, self.clock() + self.settings.retry_base)

    async def reconcile(self, app: App) -> Action | None:
        spec = app.spec
        if spec is None:
            return None
        if not app.resumed:
            await self._resume(app, spec)
        work, app.pending = app.pending, set()
        action = decide(
            suspended=spec.suspend,
            token=app.token,
            pending=work,
            now=self.clock(),
            app_secret_digest=await self._app_secret_digest(app, spec, work),
        )
        if action is Action.SUSPEND:
            app.pending |= work & {Work.REFRESH}  # a refresh asked for waits for resume
            self.probes.forget(app.key)
            self.publisher.probe_dropped(app)
        else:
            if Work.PROBES in work:
                await self.probes.sync(app, spec, lambda d: self.publisher.probe_dropped(app, d))
            if spec.app_ref is not None:  # the ClusterLarkApp refreshes; this one follows
                await self.follow.step(app, spec, work)
                if Work.REFRESH in work:
                    await self._mark_refresh_handled(app)
            elif action is Action.REFRESH:
                await self._refresh(app, spec, force=Work.REFRESH in work)
                await self._mark_refresh_handled(app)
            elif action is Action.REPAIR:
                await self._repair(app, spec)
        # What the token is for: its own app, or the ClusterLarkApp's while it admits this
        # namespace (None: refused, or not known yet). Rollouts only while not suspended.
        effective = self.follow.effective(app, spec)
        if action is not Action.SUSPEND and effective is not None:
            if app.availability is None:  # once after a start, then once per refresh
                self._check_availability(app, effective, app.token.held)
        rolling = effective if action is not Action.SUSPEND else None
        if rolling:
            self.rollouts.plan(app, rolling)
            await self.rollouts.run(app)
        await self.publisher.publish(app, live=self.registry.get(app.key) is app)
        now = self.clock()
        if spec.app_ref is not None:
            wake = follow.wake(app.token, now)
        else:
            wake = next_wake(app.token, spec.suspend, now)
        if rolling and (due := self.rollouts.next_due(app)) is not None:
            wake = due if wake is None else min(wake, due)
        if wake is not None:
            deadline = wake_deadline(app.token, wake, spec.refresh.renew_before_seconds)
            self.scheduler.at(app.key, wake, deadline=deadline)
        if app.availability != app.published.availability and not app.removed:
            self.scheduler.now(app.key)  # answered during the status write: publish it
        return action

    # --- the steps --------------------------------------------------------------------------
    async def _resume(self, app: App, spec: LarkAppSpec) -> None:
        """After a (re)start: take the tokens already in the token Secret when they match
        what status recorded, so nothing still valid is fetched again."""
        app.resumed = True
        recorded = (app.published.status.get("token") or {}).get("fingerprint")
        effective = self.follow.effective(app, spec)
        if recorded is None or effective is None:
            return  # a new LarkApp (nothing recorded, nothing to adopt): no read
        spec = effective  # a ClusterLarkApp's app, for a LarkApp naming one
        held = await self.secrets.adopt(app, spec, recorded)
        if held is None or (
            not spec.is_store and set(held.values) != set(refresh.token_types(spec))
        ):
            return  # nothing usable, or the spec asks for other token types now
        now, next_at = self.clock(), app.token.next_refresh_at
        if spec.is_store:
            next_at = now  # each tenant is looked at: only what is due is fetched
        if held.earliest_expiry <= now:
            next_at = now  # expired while we were down: status says Expired until renewed
        elif next_at is None:
            r = spec.refresh
            next_at = policy.next_refresh_at(
                held.earliest_expiry, r.renew_before_seconds, r.jitter, self.rng
            )
        app.token = dataclasses.replace(app.token, held=held, next_refresh_at=next_at)
        log.info(
            "resumed: token in Secret still valid until %s, next refresh %s",
            rfc3339(held.earliest_expiry),
            rfc3339(next_at),
        )

    async def _app_secret_digest(self, app: App, spec: LarkAppSpec, work: set[Work]) -> str | None:
        """Read only when the app Secret changed and no refresh is due anyway."""
        ref = spec.app_secret_ref
        if Work.CREDENTIALS not in work or spec.suspend or ref is None:
            return NOT_READ
        if refresh_due(app.token, work, self.clock()):
            return NOT_READ
        return await refresh.secret_digest(self.index.get, app.namespace, ref)

    async def _refresh(self, app: App, spec: LarkAppSpec, *, force: bool) -> None:
        now = self.clock()
        outcome: Outcome
        refused = target_refused(spec, app.name)
        credentials = spec.credentials()
        if credentials is None:
            return  # it names a ClusterLarkApp: follow.step
        if refused is not None:  # before any upstream call
            outcome = write_failure(spec, app.name, SecretNotOwned(refused), now)
        elif spec.is_store:
            outcome = await self._obtain_store(app, spec, force=force, now=now)
        else:
            outcome = await refresh.obtain(
                client=self.client,
                read_secret=self.index.get,
                namespace=app.namespace,
                spec=credentials,
                allowed_base_urls=self.settings.allowed_base_urls,
                lifetime=app.token.lifetime,
                force=force,
                now=now,
                request_id=current_context().get("request_id"),
                held_until=app.token.held.earliest_expiry if app.token.held else None,
            )
        if isinstance(outcome, Issued):
            # Availability is asked with the new token while the Secret is written, so its
            # answer is usually in this reconcile's status write, not a second one.
            self._check_availability(app, spec, outcome.tokens, fresh=force)
            # The Secret first: until it holds the new token, status keeps describing the
            # old one (which is what workloads read).
            failed = await self.secrets.write(app, spec, outcome.tokens, verify=False, now=now)
            if failed is not None:  # the credentials worked all the same
                valid = Credentials(Reason.VALID, f"App {spec.app_id} authenticated.")
                digest = outcome.app_secret_digest
                outcome = dataclasses.replace(failed, credentials=valid, app_secret_digest=digest)
        self._apply(app, spec, outcome, now)

    def _check_availability(
        self, app: App, spec: LarkAppSpec, held: HeldTokens | None, *, fresh: bool = False
    ) -> None:
        """bot/v3/info with a tenant token of `held` (none: nothing to ask with)."""
        token, app_id = availability.tenant_token(held), spec.app_id
        if token is None or app_id is None or app.removed:
            return  # nothing to ask with, or a ClusterLarkApp not resolved: none to ask about
        try:
            base_url = resolve_base_url(spec.domain, self.settings.allowed_base_urls)
        except CredentialError:
            return
        rid = current_context().get("request_id")
        self.asking.ask(
            app.key,
            lambda: self.availability.check(base_url, token, app_id, fresh=fresh, request_id=rid),
            lambda facts: self._available(app, facts),
        )

    def _available(self, app: App, facts: AvailabilityFacts) -> None:
        """A changed answer is published by the reconcile in flight (its end looks), else
        by one now."""
        if facts != app.availability and self.registry.get(app.key) is app:
            app.availability = facts
            if not self.scheduler.running(app.key):
                self.scheduler.now(app.key)

    async def _obtain_store(
        self, app: App, spec: LarkAppSpec, *, force: bool, now: float
    ) -> refresh.Outcome:
        own = spec.credentials()  # a store app names its own app (the CRD refuses appRef)
        assert own is not None and spec.store is not None and self.tickets is not None
        creds = await refresh.read_credentials(
            self.index.get, app.namespace, own, self.settings.allowed_base_urls, now
        )
        if isinstance(creds, Failed):
            return creds
        return await storeapp.obtain(
            storeapp.StoreCall(own.app_id, spec.store, spec.refresh, *creds),
            client=self.client,
            book=self.tickets,
            held=app.token.held,
            lifetime=app.token.lifetime,
            progress=app.store,
            settings=self.settings,
            force=force,
            now=now,
            request_id=current_context().get("request_id"),
            rng=self.rng,
        )

    async def _repair(self, app: App, spec: LarkAppSpec) -> None:
        """The token Secret changed (or its name did): make it hold the token again."""
        now = self.clock()
        refused = target_refused(spec, app.name)
        failed: Failed | None = None
        if refused is not None:
            failed = write_failure(spec, app.name, SecretNotOwned(refused), now)
        elif app.token.held is not None:
            failed = await self.secrets.write(app, spec, app.token.held, verify=True, now=now)
        if failed is not None:
            self._apply(app, spec, failed, now)

    def _apply(self, app: App, spec: LarkAppSpec, outcome: Outcome, now: float) -> None:
        before = app.token
        app.token = refresh.apply(
            before, outcome, spec=spec, settings=self.settings, now=now, rng=self.rng
        )
        if isinstance(outcome, Failed) and outcome.error.reason in WRITE_FAILURES:
            app.write_failed = True
        self.publisher.outcome(before, app.token, outcome, now)

    async def _mark_refresh_handled(self, app: App) -> None:
        """Record that a `kubectl lark refresh` request was acted on (success or not)."""
        req = app.refresh_request
        if req is None or req == app.refresh_request_done:
            return
        app.refresh_request_done = req
        patch = {"metadata": {"annotations": {REFRESH_HANDLED_ANNOTATION: req}}}
        await self.kube.patch_larkapp(app.namespace, app.name, patch)


def _where(e: BaseException) -> str:
    """The operator's own innermost frames of a traceback: functions and lines, no values."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "lark_operator" in f.filename]
    return " < ".join(f"{f.name}:{f.lineno}" for f in reversed(frames[-3:])) or "?"


def _safe(e: BaseException) -> str:
    """Exception text for status/logs. OpenPlatformError and KubeError never carry secrets;
    anything else is reduced to its type."""
    if isinstance(e, (OpenPlatformError, KubeError)):
        return str(e)
    return type(e).__name__
