"""The heart of the operator: one in-memory registry of LarkApps and one scheduler.

kopf tells the controller what exists (`upsert`, `remove`); the controller decides what to
do and when. A single heap orders every app by its next due time (refresh or expiry), so
5,000 apps cost 5,000 heap entries, not 5,000 sleeping tasks. Each app has at most one
reconcile in flight; a change arriving meanwhile marks it dirty and it runs again.
Nothing here knows kopf: handlers.py adapts.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import random
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lark_operator import (
    LARKAPP_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REFRESH_HANDLED_ANNOTATION,
    metrics,
)
from lark_operator.credentials import (
    CredentialError,
    binary_size,
    decode_value,
    resolve_base_url,
    secret_value,
)
from lark_operator.kube import KubeClient, KubeError
from lark_operator.logs import current_context, log_context
from lark_operator.models import LarkAppSpec
from lark_operator.openplatform import ErrorKind, OpenPlatformClient, OpenPlatformError
from lark_operator.operator_settings import Settings
from lark_operator.status import (
    CREDENTIALS_REASONS,
    Credentials,
    ErrorFacts,
    Observed,
    TokenFacts,
    build_status,
    parse_rfc3339,
    probe_entry,
    rfc3339,
    status_patch,
    transitions,
)
from lark_operator.tokens import policy
from lark_operator.tokens.secret import (
    Claim,
    HeldTokens,
    build_token_secret,
    claim,
    issued_for,
    read_token_secret,
)
from lark_operator.tokens.store import SecretNotOwned, TokenSecretStore

log = logging.getLogger("lark_operator.controller")

Key = tuple[str, str]  # (namespace, name)
SECRET_CACHE_TTL = 300.0


class _ProbeFailure:
    """A probe result made up by the controller (e.g. its DSN Secret is missing)."""

    def __init__(self, reason: str, message: str, now: float):
        self.healthy = False
        self.reason = reason
        self.message = message
        self.latency_ms = None
        self.details: dict[str, str] = {}
        self.checked_at = now


@dataclass
class AppState:
    namespace: str
    name: str
    uid: str | None = None
    generation: int = 0
    spec: LarkAppSpec | None = None
    spec_error: str | None = None
    raw_spec: dict[str, Any] = field(default_factory=dict)  # as last seen, to spot changes
    status: dict[str, Any] = field(default_factory=dict)  # as last written
    held: HeldTokens | None = None
    refreshed_at: float | None = None
    refreshed_before: bool = False
    next_refresh_at: float | None = None
    secret_hash: str | None = None
    credentials: Credentials | None = None
    last_error: ErrorFacts | None = None
    failures: int = 0
    # work flags
    force: bool = False
    check_credentials: bool = False
    check_secret: bool = False
    probes_dirty: bool = True
    adopted: bool = False
    running: bool = False
    dirty: bool = False
    sched_seq: int = 0
    token_secret_rv: str | None = None
    token_lifetime: float | None = None  # of the last token obtained (expire as returned)
    token_secret: dict[str, Any] | None = None  # as last written/read (for write-only updates)
    write_failed: bool = False  # the last reconcile could not write what it should
    removed: bool = False  # the LarkApp is gone: write nothing more for it
    refresh_request: str | None = None  # refresh annotation value being handled
    refresh_request_done: str | None = None
    probe_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe_written_at: dict[str, float] = field(default_factory=dict)
    counted_phase: str | None = None  # the phase this app is counted under in metrics
    # Token Secrets this LarkApp wrote under an earlier spec.target.secretName: released
    # (per deletionPolicy, and only if still ours) once the new target holds the token.
    old_targets: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def body_ref(self) -> dict[str, Any]:
        return {"metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}


class Controller:
    def __init__(
        self,
        kube: KubeClient,
        client: OpenPlatformClient,
        settings: Settings,
        *,
        probes: Any = None,  # probes.scheduler.ProbeScheduler (optional for tests)
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ):
        self.kube, self.client, self.settings, self.probes = kube, client, settings, probes
        self.token_store = TokenSecretStore(kube)
        self.clock, self.rng = clock, rng
        self.apps: dict[Key, AppState] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(settings.max_concurrent_refreshes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        # Which apps read which Secret, and which Secret holds which app's tokens.
        self._refs: dict[tuple[str, str], set[Key]] = {}
        # Several LarkApps may name one token Secret: one holds it, the others are refused.
        self._token_secrets: dict[tuple[str, str], set[Key]] = {}
        self._indexed: dict[Key, tuple[set[tuple[str, str]], tuple[str, str] | None]] = {}
        # Referenced Secrets as last read, dropped on any watch event for them (and after
        # SECRET_CACHE_TTL, in case the watch is down): a refresh cycle then costs no read.
        self._secret_cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self.last_loop_at = 0.0
        self.started = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="lark-scheduler")
        self.started = True

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        lag = max(0.0, self.clock() - self._heap[0][0]) if self._heap else 0.0
        alive = self._loop_task is not None and not self._loop_task.done()
        return {
            "scheduler": "running" if alive else "stopped",
            "larkapps": len(self.apps),
            "scheduled": len(self._heap),
            "inflight": sum(1 for a in self.apps.values() if a.running),
            "overdue_seconds": round(lag, 3),
        }

    # --- what kopf tells us ------------------------------------------------------------
    def upsert(
        self,
        body: Mapping[str, Any],
        *,
        force_refresh: bool = False,
        refresh_request: str | None = None,
    ) -> None:
        meta = body.get("metadata") or {}
        key = (meta["namespace"], meta["name"])
        app = self.apps.get(key)
        new = app is None
        if app is None:
            app = AppState(namespace=key[0], name=key[1])
            app.status = dict(body.get("status") or {})
            self._resume_from_status(app)
            self.apps[key] = app
            app.counted_phase = metrics.count_phase(None, app.status.get("phase") or "Pending")
        app.uid = meta.get("uid")
        # kopf calls this for every event, the operator's own status writes included: only
        # a new object, a new spec or a refresh request is work.
        generation = int(meta.get("generation") or 0)
        raw_spec = dict(body.get("spec") or {})
        changed = new or generation != app.generation or raw_spec != app.raw_spec
        app.generation, app.raw_spec = generation, raw_spec
        if changed:
            old_spec = app.spec
            try:
                app.spec, app.spec_error = LarkAppSpec.parse(body.get("spec")), None
            except ValidationError as e:
                app.spec, app.spec_error = None, _validation_summary(e)
            if app.spec != old_spec:
                app.probes_dirty = True
                if old_spec is not None and app.spec is not None:
                    self._spec_changed(app, old_spec, app.spec)
            self._index(app)
        if refresh_request is not None and refresh_request != app.refresh_request:
            app.refresh_request = refresh_request
            app.force = changed = True
        elif force_refresh and refresh_request is None:
            app.force = changed = True
        if changed:
            self.kick(key)

    def _spec_changed(self, app: AppState, old: LarkAppSpec, new: LarkAppSpec) -> None:
        if _issuer(old) != _issuer(new):
            # The tokens held are the old app's: nothing about them describes the new one
            # (status shows no token until the new app's lands). The Secret keeps them,
            # with their own app_id, until then: a failure for the new app blanks nothing.
            app.held, app.refreshed_at, app.refreshed_before = None, None, False
            app.credentials, app.last_error, app.failures = None, None, 0
            app.secret_hash, app.next_refresh_at = None, None
        if _token_inputs(old) != _token_inputs(new):
            app.force = True  # a new app/secret/domain/token set: fetch for it now
        before, after = old.token_secret_name(app.name), new.token_secret_name(app.name)
        if before != after:
            # Write the held token to the new target now; the old one is let go after.
            app.old_targets.add(before)
            app.token_secret, app.token_secret_rv = None, None
            app.check_secret = True
        app.old_targets.discard(after)

    async def remove(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta["namespace"], meta["name"])
        app = self.apps.pop(key, None)
        if app is not None:
            # A reconcile still running must not write the token Secret back after it is
            # deleted below: it stops at its next write, and we wait for it (bounded).
            app.removed = True
            for _ in range(200):
                if not app.running:
                    break
                await asyncio.sleep(0.05)
        if self.probes is not None:
            self.probes.unsubscribe(key)
        self._unindex(key)
        metrics.forget_larkapp(*key)
        if app is not None:
            app.counted_phase = metrics.count_phase(app.counted_phase, None)
        try:
            spec = LarkAppSpec.parse(body.get("spec"))
        except ValidationError:
            return
        # Called from the finalizer and again for the DELETED event: the second finds
        # nothing left to do. Only Secrets that are ours are touched (tokens/store.py).
        names = {spec.token_secret_name(key[1]), *(app.old_targets if app else ())}
        for secret_name in sorted(names):
            await self._release(key, secret_name, meta.get("uid"), spec)

    async def _release(
        self, key: Key, secret_name: str, uid: str | None, spec: LarkAppSpec
    ) -> None:
        delete = spec.target.deletion_policy == "Delete"
        done = await self.token_store.release(key[0], secret_name, key[1], uid, delete=delete)
        with log_context(namespace=key[0], name=key[1]):
            log.info(
                "token Secret %s (deletionPolicy %s): %s",
                secret_name,
                spec.target.deletion_policy,
                done,
            )

    def secret_changed(self, event: str, namespace: str, name: str, rv: str | None) -> None:
        """From the metadata-only Secret watch. SYNC events (the initial listing) only
        record; they must not set off work for every app at start-up."""
        if event == "SYNC":
            return
        self._secret_cache.pop((namespace, name), None)
        for token_owner in list(self._token_secrets.get((namespace, name), ())):
            app = self.apps.get(token_owner)
            if app is not None and (event == "DELETED" or rv != app.token_secret_rv):
                app.check_secret = True
                if app.last_error is not None and app.last_error.reason in _WRITE_FAILURES:
                    # Refused or failed to write it: the Secret changed (consent to adopt,
                    # its holder let go, it is gone), so try again now, not after backoff.
                    app.next_refresh_at = self.clock()
                self.kick(token_owner)
        for key in self._refs.get((namespace, name), ()):
            app = self.apps.get(key)
            if app is None or app.spec is None:
                continue
            if app.spec.app_secret_ref.name == name:
                app.check_credentials = True
            if name in app.spec.referenced_secrets() - {app.spec.app_secret_ref.name}:
                app.probes_dirty = True
            self.kick(key)

    # --- scheduling -------------------------------------------------------------------------
    def kick(self, key: Key) -> None:
        """Reconcile now."""
        self._schedule_at(key, self.clock())

    def _schedule_at(self, key: Key, when: float) -> None:
        app = self.apps.get(key)
        if app is None:
            return
        app.sched_seq = next(self._seq)
        heapq.heappush(self._heap, (when, app.sched_seq, key))
        self._wake.set()

    def _reschedule(self, app: AppState) -> None:
        """Next wake: the refresh, or the token's expiry if that comes first (so that the
        status turns Expired on time even when nothing else happens)."""
        times = []
        now = self.clock()
        if app.next_refresh_at is not None and not (app.spec and app.spec.suspend):
            times.append(app.next_refresh_at)
        if app.held is not None and app.held.earliest_expiry > now:
            times.append(app.held.earliest_expiry + 0.05)
        if times:
            self._schedule_at(app.key, min(times))

    async def _run(self) -> None:
        while True:
            self.last_loop_at = self.clock()
            now = self.clock()
            while self._heap and self._heap[0][0] <= now:
                due, seq, key = heapq.heappop(self._heap)
                app = self.apps.get(key)
                if app is None or seq != app.sched_seq:
                    continue  # superseded entry (lazy deletion)
                metrics.SCHEDULER_LAG.set(max(0.0, now - due))
                self._launch(app)
            timeout = min(self._heap[0][0] - now, 5.0) if self._heap else 5.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass

    def _launch(self, app: AppState) -> None:
        if app.running:
            app.dirty = True
            return
        app.running = True
        task = asyncio.create_task(self._reconcile_loop(app))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile_loop(self, app: AppState) -> None:
        try:
            while True:
                app.dirty = False
                async with self._sem:
                    await self._reconcile_safely(app)
                if not app.dirty or self.apps.get(app.key) is not app:
                    break
        finally:
            app.running = False

    async def _reconcile_safely(self, app: AppState) -> None:
        rid = uuid.uuid4().hex[:12]
        app_id = app.spec.app_id if app.spec else None
        with log_context(request_id=rid, namespace=app.namespace, name=app.name, app_id=app_id):
            try:
                app.write_failed = False
                with metrics.RECONCILE_DURATION.time():
                    await self._reconcile(app)
                # A write the API server refused is reported in status, and is a failed
                # reconcile all the same.
                metrics.RECONCILES.labels("error" if app.write_failed else "ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                metrics.RECONCILES.labels("error").inc()
                log.error("reconcile failed in %s: %s: %s", _where(e), type(e).__name__, _safe(e))
                self._schedule_at(app.key, self.clock() + self.settings.retry_base)

    # --- reconcile ------------------------------------------------------------------------
    async def _reconcile(self, app: AppState) -> None:
        spec = app.spec
        if spec is None:
            return
        if not app.adopted:
            await self._adopt(app)
        if spec.suspend:
            if self.probes is not None:
                self.probes.unsubscribe(app.key)
            app.probe_entries.clear()
            metrics.forget_probes(app.namespace, app.name)
            await self._publish(app)
            self._reschedule(app)
            return
        if app.probes_dirty:
            await self._sync_probes(app, spec)
        now = self.clock()
        due = (
            app.force
            or app.next_refresh_at is None
            or now >= app.next_refresh_at
            # no token and no failure streak (e.g. its Secret vanished while we were down)
            or (app.held is None and app.failures == 0)
        )
        if app.check_credentials and not due:
            # The app's Secret changed: retry at once (skipping any backoff) if the value
            # did, or if it is gone/unreadable now.
            ref = spec.app_secret_ref
            raw = await self._get_secret(app.namespace, ref.name)
            value = _decode(((raw or {}).get("data") or {}).get(ref.key))
            due = not isinstance(value, str) or _hash(value) != app.secret_hash
        app.check_credentials = False
        if due:
            await self._refresh(app, spec)
            await self._mark_refresh_handled(app)
        elif app.check_secret:
            await self._repair_token_secret(app, spec)
        app.check_secret = False
        await self._publish(app)
        self._reschedule(app)

    async def _repair_token_secret(self, app: AppState, spec: LarkAppSpec) -> None:
        """The token Secret changed (or its name did): make it hold the token again."""
        refused = self._target_refused(spec, app.name)
        if refused is not None:
            self._write_failed(app, spec, SecretNotOwned(refused))
            return
        try:
            await self._ensure_token_secret(app, spec)
        except (KubeError, SecretNotOwned) as e:
            self._write_failed(app, spec, e)
            return
        await self._release_old_targets(app, spec)

    async def _release_old_targets(self, app: AppState, spec: LarkAppSpec) -> None:
        for name in sorted(app.old_targets):
            await self._release(app.key, name, app.uid, spec)
            app.old_targets.discard(name)

    @staticmethod
    def _target_refused(spec: LarkAppSpec, larkapp_name: str) -> str | None:
        """Why the target may not be written whatever the Secret says (None: it may)."""
        target = spec.token_secret_name(larkapp_name)
        if target in spec.referenced_secrets():
            return (
                f"Secret {target} is one this LarkApp reads (spec.appSecretRef or a probe's "
                "Secret): the token never goes into it. Give spec.target.secretName a name "
                "of its own."
            )
        return None

    def _write_failed(self, app: AppState, spec: LarkAppSpec, e: Exception) -> None:
        name = spec.token_secret_name(app.name)
        app.check_secret = app.write_failed = True
        if isinstance(e, SecretNotOwned):
            message = str(e)
            err = ErrorFacts("SecretNotOwned", message, None, self.clock())
            self._record_failure(app, ErrorKind.CONFIG, err, None)
            return
        err = ErrorFacts(
            "SecretWriteFailed", f"Cannot write token Secret {name}: {e}", None, self.clock()
        )
        self._record_failure(app, ErrorKind.TRANSIENT, err, None)

    async def _mark_refresh_handled(self, app: AppState) -> None:
        """Record that a `kubectl lark refresh` request was acted on (success or not)."""
        req = app.refresh_request
        if req is None or req == app.refresh_request_done:
            return
        app.refresh_request_done = req
        annotations = {REFRESH_HANDLED_ANNOTATION: req}
        await self.kube.patch_larkapp(
            app.namespace, app.name, {"metadata": {"annotations": annotations}}
        )

    async def _adopt(self, app: AppState) -> None:
        """After a restart: take the tokens already in the token Secret when they match
        what status recorded, so nothing still valid is fetched again."""
        app.adopted = True
        recorded = (app.status.get("token") or {}).get("fingerprint")
        if app.spec is None or recorded is None:
            return  # a new LarkApp (nothing recorded, nothing to adopt): no read
        secret = await self.kube.get_secret(app.namespace, app.spec.token_secret_name(app.name))
        held = read_token_secret(secret)
        if held is None or recorded != held.fingerprint():
            return
        if claim(secret, app.name)[0] is not Claim.OURS:
            return  # relabelled or replaced while we were down: not ours to carry on with
        app_id, base_url = issued_for(secret)
        if app_id != app.spec.app_id or base_url not in (None, app.spec.base_url()):
            return  # the spec names another app now (changed while we were down)
        # What the Secret serves, even when it expired while the operator was down: the
        # expiry alerts must see it until a refresh replaces it.
        metrics.set_token_expiry(app.namespace, app.name, held.expires_at)
        if set(held.values) != set(_token_types(app.spec)):
            return  # the spec asks for other token types now: fetch them
        app.held = held  # even if expired: status then says Expired until a refresh lands
        self._remember_token_secret(app, secret)
        if held.earliest_expiry <= self.clock():
            app.next_refresh_at = self.clock()
        elif app.next_refresh_at is None:
            app.next_refresh_at = policy.next_refresh_at(
                held.earliest_expiry,
                app.spec.refresh.renew_before_seconds,
                app.spec.refresh.jitter,
                self.rng,
            )
        log.info(
            "resumed: token in Secret still valid until %s, next refresh %s",
            _iso(held.earliest_expiry),
            _iso(app.next_refresh_at),
        )

    def _resume_from_status(self, app: AppState) -> None:
        token = app.status.get("token") or {}
        app.next_refresh_at = parse_rfc3339(token.get("nextRefreshAt"))
        app.refreshed_at = parse_rfc3339(token.get("refreshedAt"))
        conds = {c.get("type"): c for c in app.status.get("conditions") or []}
        tok = conds.get("TokenReady") or {}
        app.refreshed_before = tok.get("reason") == "Refreshed"
        cred = conds.get("CredentialsValid") or {}
        if cred.get("reason") and cred.get("reason") != "Pending":
            app.credentials = Credentials(cred["reason"], cred.get("message", ""))
        app.failures = int(app.status.get("consecutiveFailures") or 0)
        metrics.set_consecutive_failures(app.namespace, app.name, app.failures)
        err = app.status.get("lastError")
        if err and app.failures:
            app.last_error = ErrorFacts(
                err.get("reason", "UnknownError"), err.get("message", ""), err.get("code")
            )

    async def _get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        key, now = (namespace, name), time.monotonic()
        hit = self._secret_cache.get(key)
        if hit is not None and now - hit[0] < SECRET_CACHE_TTL:
            return hit[1]
        secret = await self.kube.get_secret(namespace, name)
        self._secret_cache[key] = (now, secret)
        return secret

    async def _read_app_secret(self, app: AppState, spec: LarkAppSpec) -> str | None:
        ref = spec.app_secret_ref
        app.secret_hash = None  # until read: a Secret that comes back is a change
        secret = await self._get_secret(app.namespace, ref.name)
        try:
            return secret_value(
                secret, ref.name, ref.key, namespace=app.namespace, field="spec.appSecretRef"
            )
        except CredentialError as e:
            self._fail_config(app, e.reason, e.message)
            return None

    def _fail_config(self, app: AppState, reason: str, message: str) -> None:
        """A problem on our side of the wire (no upstream call was made)."""
        app.credentials = Credentials(reason, message)
        self._record_failure(
            app, ErrorKind.CONFIG, ErrorFacts(reason, message, None, self.clock()), None
        )

    def _record_failure(
        self, app: AppState, kind: ErrorKind, err: ErrorFacts, retry_after: float | None
    ) -> None:
        app.failures += 1
        app.last_error = err
        app.force = False
        now = self.clock()
        delay = policy.retry_delay(
            kind=kind,
            failures=app.failures,
            now=now,
            token_expires_at=app.held.earliest_expiry if app.held else None,
            retry_after=retry_after,
            base=self.settings.retry_base,
            cap=self.settings.retry_cap,
            credentials_cap=self.settings.credentials_retry_cap,
            near_expiry_cap=self.settings.near_expiry_retry_cap,
            rng=self.rng,
        )
        app.next_refresh_at = now + delay
        metrics.TOKEN_REFRESHES.labels("failure").inc()
        metrics.set_consecutive_failures(app.namespace, app.name, app.failures)
        log.warning(
            "refresh failed (%s), attempt %d, next try in %.1fs: %s",
            err.reason,
            app.failures,
            delay,
            err.message,
            extra={"error_code": err.code} if err.code is not None else None,
        )

    async def _refresh(self, app: AppState, spec: LarkAppSpec) -> None:
        try:
            base_url = resolve_base_url(spec.domain, self.settings.allowed_base_urls)
        except CredentialError as e:
            self._fail_config(app, e.reason, e.message)
            return
        refused = self._target_refused(spec, app.name)
        if refused is not None:
            self._write_failed(app, spec, SecretNotOwned(refused))
            return
        secret = await self._read_app_secret(app, spec)
        if secret is None:
            return
        app.secret_hash = _hash(secret)
        # Only a token fresher than the one this app is renewing may come from the shared
        # cache (another LarkApp of the same app may have renewed it a moment ago).
        min_valid = (
            policy.max_lead(
                spec.refresh.renew_before_seconds, spec.refresh.jitter, app.token_lifetime
            )
            + 5
        )
        values: dict[str, str] = {}
        expires: dict[str, float] = {}
        lifetime: float | None = None
        try:
            for token_type in _token_types(spec):
                tok = await self.client.get_token(
                    base_url,
                    spec.app_id,
                    secret,
                    token_type,
                    min_valid_for=min_valid,
                    force=app.force,
                    request_id=_current_request_id(),
                )
                values[token_type], expires[token_type] = tok.value, tok.expires_at
                lifetime = tok.expires_at - tok.obtained_at
        except OpenPlatformError as e:
            await self._upstream_failed(app, spec, base_url, secret, e)
            return
        new = HeldTokens(values, expires)
        app.credentials = Credentials("Valid", f"App {spec.app_id} authenticated.")
        app.force = False
        # The Secret first: until it holds the new token, status keeps describing the old
        # one (which is what workloads read).
        try:
            await self._ensure_token_secret(app, spec, verify=False, tokens=new)
        except (KubeError, SecretNotOwned) as e:
            self._write_failed(app, spec, e)
            return
        await self._release_old_targets(app, spec)
        now = self.clock()
        changed = app.held is None or new.fingerprint() != app.held.fingerprint()
        if changed:
            if app.held is not None:
                app.refreshed_before = True
            app.refreshed_at = now
        app.held, app.token_lifetime = new, lifetime
        app.last_error, app.failures = None, 0
        app.next_refresh_at = max(
            policy.next_refresh_at(
                new.earliest_expiry,
                spec.refresh.renew_before_seconds,
                spec.refresh.jitter,
                self.rng,
                lifetime,
            ),
            now + self.settings.retry_base,  # a platform handing back the same token early
        )
        metrics.TOKEN_REFRESHES.labels("success" if changed else "unchanged").inc()
        metrics.set_consecutive_failures(app.namespace, app.name, 0)
        metrics.set_token_expiry(app.namespace, app.name, expires)
        if changed:
            log.info(
                "token %s until %s; next refresh %s",
                "issued" if not app.refreshed_before else "refreshed",
                _iso(new.earliest_expiry),
                _iso(app.next_refresh_at),
            )

    async def _upstream_failed(
        self, app: AppState, spec: LarkAppSpec, base_url: str, secret: str, e: OpenPlatformError
    ) -> None:
        # The condition vocabulary is fixed; a code outside it is reported verbatim as
        # UnknownError (e.g. 9999166x "invalid token" answered by a token endpoint).
        reason = e.reason if e.reason in CREDENTIALS_REASONS else "UnknownError"
        kind = e.kind
        if kind is ErrorKind.TOKEN_INVALID:
            for token_type in _token_types(spec):
                self.client.invalidate(base_url, spec.app_id, secret, token_type)
            kind = ErrorKind.TRANSIENT
        if kind in (ErrorKind.CREDENTIALS, ErrorKind.CONFIG):
            app.credentials = Credentials(reason, _safe(e))
        elif app.credentials is None or app.credentials.reason != "Valid":
            # Could not tell whether the credentials are good: say why, as Unknown.
            app.credentials = Credentials(reason, _safe(e))
        self._record_failure(
            app, kind, ErrorFacts(reason, _safe(e), e.code, self.clock()), e.retry_after
        )

    async def _ensure_token_secret(
        self,
        app: AppState,
        spec: LarkAppSpec,
        *,
        verify: bool = True,
        tokens: HeldTokens | None = None,
    ) -> None:
        """The token Secret holds `tokens` (default: those held). After a refresh
        (`verify=False`) one blind write; otherwise read-compare-write (tokens/store.py)."""
        tokens = tokens or app.held
        if tokens is None or app.removed:
            return
        desired = build_token_secret(
            namespace=app.namespace,
            larkapp_name=app.name,
            larkapp_uid=app.uid,
            spec=spec,
            tokens=tokens,
        )
        written = await self.token_store.write(
            desired, app.uid, blind=not verify, last_written=app.token_secret
        )
        if written is not None:
            self._remember_token_secret(app, written)

    @staticmethod
    def _remember_token_secret(app: AppState, secret: Mapping[str, Any] | None) -> None:
        # Without managedFields (a third of a Secret's JSON): a PUT that carries none keeps
        # the server's, and 5,000 copies of it add up.
        if secret:
            meta = {k: v for k, v in (secret.get("metadata") or {}).items() if k != "managedFields"}
            app.token_secret = {**secret, "metadata": meta}
        else:
            app.token_secret = None
        app.token_secret_rv = (secret or {}).get("metadata", {}).get("resourceVersion")

    # --- probes ---------------------------------------------------------------------------
    async def _sync_probes(self, app: AppState, spec: LarkAppSpec) -> None:
        app.probes_dirty = False
        if self.probes is None:
            return
        configured = set(spec.probes.configured)
        for dep in ("postgres", "redis", "rabbitmq"):
            if dep not in configured:
                self.probes.unsubscribe(app.key, dep)
                app.probe_entries.pop(dep, None)
                metrics.forget_probes(app.namespace, app.name, dep)
                continue
            cfg = getattr(spec.probes, dep)
            ref = cfg.dsn_secret_ref if dep == "postgres" else cfg.url_secret_ref
            url = await self._read_ref(app, ref.name, ref.key)
            mgmt = None
            if (
                dep == "rabbitmq"
                and cfg.management_url_secret_ref is not None
                and isinstance(url, str)
            ):
                m = cfg.management_url_secret_ref
                mgmt = await self._read_ref(app, m.name, m.key)
            for value in (url, mgmt):
                if isinstance(value, _ProbeFailure):
                    self.probes.unsubscribe(app.key, dep)
                    await self._on_probe_result(app.key, value, dependency=dep)
                    break
            else:
                self.probes.subscribe(
                    app.key,
                    dep,
                    url,
                    cfg,
                    spec.probes.interval_seconds,
                    spec.probes.timeout_seconds,
                    self._on_probe_result,
                    management_url=mgmt if isinstance(mgmt, str) else None,
                )

    async def _read_ref(self, app: AppState, name: str, key: str) -> str | _ProbeFailure:
        secret = await self._get_secret(app.namespace, name)
        try:
            return secret_value(secret, name, key, namespace=app.namespace)
        except CredentialError as e:
            # A DSN/URL that is not text is a URL that cannot be parsed, not bad credentials.
            reason = "InvalidURL" if e.reason == "InvalidCredentials" else e.reason
            return _ProbeFailure(reason, e.message, self.clock())

    async def _on_probe_result(self, key: Key, result: Any, dependency: str | None = None) -> None:
        app = self.apps.get(key)
        if app is None or app.spec is None or app.spec.suspend:
            return
        dep = dependency or result.dependency
        metrics.set_probe_up(app.namespace, app.name, dep, result.healthy)
        last = app.probe_entries.get(dep)
        now = self.clock()
        stale = now - app.probe_written_at.get(dep, 0.0) >= self.settings.probe_status_every
        if (
            last is not None
            and not stale
            and (last.get("healthy"), last.get("reason")) == (bool(result.healthy), result.reason)
        ):
            return  # unchanged: metrics only, no status write
        app.probe_entries[dep] = probe_entry(result)
        app.probe_written_at[dep] = now
        await self._publish(app)

    # --- status -----------------------------------------------------------------------------
    def _observed(self, app: AppState) -> Observed:
        spec = app.spec
        token = None
        refused = app.last_error is not None and app.last_error.reason == "SecretNotOwned"
        if app.held is not None and spec is not None and not refused:
            token = TokenFacts(
                secret_name=spec.token_secret_name(app.name),
                expires_at=app.held.earliest_expiry,
                refreshed_at=app.refreshed_at or self.clock(),
                next_refresh_at=app.next_refresh_at,
                fingerprint=app.held.fingerprint(),
                refreshed_before=app.refreshed_before,
            )
        return Observed(
            generation=app.generation,
            now=self.clock(),
            suspended=bool(spec and spec.suspend),
            credentials=app.credentials,
            token=token,
            last_error=app.last_error,
            consecutive_failures=app.failures,
            configured_probes=spec.probes.configured if spec and not spec.suspend else (),
            probes=dict(app.probe_entries),
        )

    async def _publish(self, app: AppState) -> None:
        if app.removed:
            return
        async with app.lock:
            new = build_status(self._observed(app), app.status)
            patch = status_patch(new, app.status)
            if patch is None:
                self._export_status(app, new, new)  # unchanged; still exported after a restart
                return
            old, app.status = app.status, new
            try:
                await self.kube.patch_larkapp_status(app.namespace, app.name, patch)
            except KubeError as e:
                if e.status == 404:
                    return  # deleted meanwhile
                app.status = old
                raise
            metrics.STATUS_WRITES.inc()
            self._export_status(app, new, old)
            for ev in transitions(old, new):
                metrics.EVENTS_EMITTED.labels(ev.reason).inc()
                try:
                    await self.kube.create_event(app.body_ref(), ev.type, ev.reason, ev.message)
                except KubeError as e:
                    log.warning("could not post Event %s: %s", ev.reason, e)

    def _export_status(
        self, app: AppState, status: Mapping[str, Any], old: Mapping[str, Any]
    ) -> None:
        """Conditions, their reasons and the phase count, as metrics (not for an app deleted
        while this reconcile was in flight: its series are gone and must stay gone)."""
        if self.apps.get(app.key) is not app:
            return
        metrics.export_conditions(
            app.namespace, app.name, status.get("conditions") or [], old.get("conditions") or []
        )
        app.counted_phase = metrics.count_phase(app.counted_phase, status.get("phase") or "Pending")

    # --- indexes ------------------------------------------------------------------------------
    def _index(self, app: AppState) -> None:
        if app.spec is None:
            self._unindex(app.key)
            return
        refs = {(app.namespace, n) for n in app.spec.referenced_secrets()}
        token_ref = (app.namespace, app.spec.token_secret_name(app.name))
        if self._indexed.get(app.key) == (refs, token_ref):
            return  # unchanged: keep the cached Secrets
        self._unindex(app.key)
        for ref in refs:
            self._refs.setdefault(ref, set()).add(app.key)
        token_ref = (app.namespace, app.spec.token_secret_name(app.name))
        self._token_secrets.setdefault(token_ref, set()).add(app.key)
        self._indexed[app.key] = (refs, token_ref)

    def _unindex(self, key: Key) -> None:
        refs, token_ref = self._indexed.pop(key, (set(), None))
        for ref in refs:
            keys = self._refs.get(ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._refs[ref]
                    self._secret_cache.pop(ref, None)
        if token_ref is not None and (holders := self._token_secrets.get(token_ref)):
            holders.discard(key)
            if not holders:
                del self._token_secrets[token_ref]

    def token_secret_selector(self) -> str:
        return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{LARKAPP_LABEL}"


# --- helpers -----------------------------------------------------------------------------------


def _token_types(spec: LarkAppSpec) -> list[str]:
    return [t for t in ("tenant", "app") if getattr(spec.tokens, t)]


# lastError reasons that say the token Secret was not written (the token may be fine).
_WRITE_FAILURES = frozenset({"SecretNotOwned", "SecretWriteFailed"})


def _issuer(spec: LarkAppSpec) -> tuple[str, str]:
    """Who the tokens come from: another app or another platform means other tokens."""
    return (spec.app_id, spec.base_url())


def _token_inputs(spec: LarkAppSpec) -> tuple[Any, ...]:
    return (spec.app_id, spec.app_secret_ref, spec.domain, spec.tokens)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Kept for callers and tests that use the old names; the logic is in credentials.py.
_decode = decode_value
_binary_size = binary_size


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


def _validation_summary(e: ValidationError) -> str:
    return "; ".join(".".join(str(p) for p in err["loc"]) + ": " + err["msg"] for err in e.errors())


def _iso(ts: float | None) -> str:
    return rfc3339(ts) or "-"


def _current_request_id() -> str | None:
    return current_context().get("request_id")
