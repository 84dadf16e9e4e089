"""ClusterLarkApps: one refresh per app for the whole cluster, fanned out to every LarkApp
that names it (spec.appRef).

Each ClusterLarkApp has a token state of its own and its own place in a scheduler (a heap
of due times, like LarkApps'). Its App Secret is read only from the cluster resource
namespace. When what its users see changes — a new token, its credentials, an error, a
change of who is allowed — every LarkApp naming it is woken and takes the token from here
(reconcile/follow.py): one upstream call per app per cycle, however many namespaces share
it. The app's status (status/cluster.py) says whether its credentials work, when its token
expires and how many LarkApps use it; a change of that count is written at most once a
second.

After an operator restart the app makes one token call: the platform hands back the token
it holds (re-issue happens only in the last 30 minutes), so nothing is rewritten or rolled,
and the schedule recorded in status is kept. A LarkApp's token Secret is never a source of
the app's token: it lives in a namespace whose users may write it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lark_operator.kube import KubeAPI, KubeError
from lark_operator.logs import log_context
from lark_operator.models import ClusterLarkAppSpec
from lark_operator.openplatform import TokenSource
from lark_operator.reconcile import refresh, resume
from lark_operator.reconcile.decide import NOT_READ, Action, decide, next_wake, refresh_due
from lark_operator.reconcile.index import SecretIndex
from lark_operator.reconcile.namespaces import NamespaceLabels
from lark_operator.reconcile.publish import Publisher
from lark_operator.reconcile.scheduler import Scheduler
from lark_operator.reconcile.state import Key, Published, TokenState, Work
from lark_operator.settings import Settings
from lark_operator.status.cluster import ClusterObserved, ClusterTokenFacts, build_cluster_status
from lark_operator.status.events import transitions
from lark_operator.status.model import status_patch
from lark_operator.vocabulary.names import API_VERSION, CLUSTER_KIND
from lark_operator.vocabulary.timefmt import parse_rfc3339

log = logging.getLogger("lark_operator.reconcile")

COUNT_DELAY = 1.0  # a change of the LarkApps count is written at most this often


@dataclass(slots=True)
class ClusterApp:
    name: str
    uid: str | None = None
    generation: int = 0
    raw_spec: dict[str, Any] = field(default_factory=dict)
    spec: ClusterLarkAppSpec | None = None
    token: TokenState = field(default_factory=TokenState)
    pending: set[Work] = field(default_factory=set)
    users: set[Key] = field(default_factory=set)  # LarkApps naming it, allowed or not
    published: Published = field(default_factory=Published)
    resumed: bool = False
    count_due: bool = False  # its LarkApps count changed: publish soon

    def body_ref(self) -> dict[str, Any]:
        meta = {"name": self.name, "uid": self.uid}
        return {"apiVersion": API_VERSION, "kind": CLUSTER_KIND, "metadata": meta}


def _seen(token: TokenState) -> tuple[Any, ...]:
    """What a LarkApp using the app takes from its token state (a change wakes them)."""
    held = token.held.fingerprint() if token.held else None
    return (held, token.credentials, token.last_error, token.failures, token.next_refresh_at)


class ClusterApps:
    def __init__(
        self,
        kube: KubeAPI,
        client: TokenSource,
        settings: Settings,
        index: SecretIndex,
        *,
        namespace: str,
        wake_user: Callable[[Key], None],
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ):
        self.kube, self.client, self.settings, self.index = kube, client, settings, index
        self.namespace = namespace  # the cluster resource namespace: App Secrets live here
        self.wake_user, self.clock, self.rng = wake_user, clock, rng
        self.apps: dict[str, ClusterApp] = {}
        self.uses: dict[Key, str] = {}  # LarkApp -> the ClusterLarkApp it names
        self.namespaces = NamespaceLabels(self._namespace_changed)
        self.publisher = Publisher(kube, clock, settings.probe_status_every)  # outcome logs
        self.scheduler = Scheduler(
            self._run, max_concurrency=settings.max_concurrent_refreshes, clock=clock
        )

    async def start(self) -> None:
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()

    def get(self, name: str) -> ClusterApp | None:
        return self.apps.get(name)

    # --- what kopf and the watches report ---------------------------------------------------
    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = meta["name"]
        c = self.apps.get(name)
        if c is None:
            c = self.apps[name] = ClusterApp(name)
            c.published.status = dict(body.get("status") or {})
            c.token = resume.token_state(c.published.status)
            c.users = {k for k, n in self.uses.items() if n == name}
        c.uid = meta.get("uid")
        generation, raw = int(meta.get("generation") or 0), dict(body.get("spec") or {})
        if c.spec is not None and (generation, raw) == (c.generation, c.raw_spec):
            return  # its own status write, or nothing that matters
        c.generation, c.raw_spec = generation, raw
        old = c.spec
        try:
            c.spec = ClusterLarkAppSpec.parse(raw)
        except ValidationError:
            c.spec = None  # the CRD schema rejects such objects
        if old is not None and c.spec is not None and _app_of(old) != _app_of(c.spec):
            c.token = TokenState()  # another app, secret or token set: nothing held is its
            c.pending.add(Work.REFRESH)
        self.scheduler.now(name)
        self._wake_users(c)  # who is allowed may have changed, or the app itself

    def remove(self, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {})["name"]
        c = self.apps.pop(name, None)
        self.scheduler.forget(name)
        if c is not None:
            self._wake_users(c)  # they are refused now; their tokens stay until they expire

    def use(self, key: Key, name: str | None) -> None:
        """LarkApp `key` names ClusterLarkApp `name` now (None: none, or it is gone)."""
        before = self.uses.get(key)
        if before == name:
            return
        for n, add in ((before, False), (name, True)):
            if n is None:
                continue
            c = self.apps.get(n)
            if c is not None:
                (c.users.add if add else c.users.discard)(key)
                self._count_changed(c)
        if name is None:
            self.uses.pop(key, None)
        else:
            self.uses[key] = name

    def admits(self, name: str, namespace: str) -> bool | None:
        """Whether a LarkApp in `namespace` may use ClusterLarkApp `name` (False also when
        there is no such app); None while its namespace's labels are not known yet."""
        c = self.apps.get(name)
        if c is None or c.spec is None:
            return False
        return c.spec.allowed_namespaces.allows(namespace, self.namespaces.labels(namespace))

    def secret_changed(self, event: str, namespace: str, name: str) -> None:
        if namespace != self.namespace:
            return
        for c in self.apps.values():
            if c.spec is not None and c.spec.app_secret_ref.name == name:
                c.pending.add(Work.CREDENTIALS)
                self.scheduler.now(c.name)

    def _namespace_changed(self, namespace: str | None) -> None:
        for key, name in self.uses.items():
            if namespace is None or key[0] == namespace:
                self.wake_user(key)
                if (c := self.apps.get(name)) is not None:
                    self._count_changed(c)

    def _wake_users(self, c: ClusterApp, only_allowed: bool = False) -> None:
        for key in sorted(c.users):
            if not only_allowed or self.admits(c.name, key[0]):
                self.wake_user(key)

    def _count_changed(self, c: ClusterApp) -> None:
        if not c.count_due:
            c.count_due = True
            self.scheduler.at(c.name, self.clock() + COUNT_DELAY)

    # --- one refresh for the whole cluster ------------------------------------------------------
    async def _run(self, name: str) -> None:
        c = self.apps.get(name)
        if c is None or c.spec is None:
            return
        rid = uuid.uuid4().hex[:12]
        with log_context(request_id=rid, name=name, app_id=c.spec.app_id):
            try:
                await self.reconcile(c, c.spec, rid)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # logged and retried; never an exception out of the loop
                safe = str(e) if isinstance(e, KubeError) else type(e).__name__
                log.error("ClusterLarkApp reconcile failed: %s", safe)
                self.scheduler.at(name, self.clock() + self.settings.retry_base)

    async def reconcile(self, c: ClusterApp, spec: ClusterLarkAppSpec, rid: str) -> None:
        work, c.pending = c.pending, set()
        now, before = self.clock(), c.token
        recorded = (c.published.status.get("token") or {}) if not c.resumed else {}
        c.resumed = True
        action = decide(
            suspended=False,
            token=c.token,
            pending=work,
            now=now,
            app_secret_digest=await self._secret_digest(c, spec, work, now),
        )
        if action is Action.REFRESH:
            outcome = await refresh.obtain(
                client=self.client,
                read_secret=self.index.get,
                namespace=self.namespace,
                spec=spec,
                allowed_base_urls=self.settings.allowed_base_urls,
                lifetime=c.token.lifetime,
                force=False,
                now=now,
                request_id=rid,
                held_until=c.token.held.earliest_expiry if c.token.held else None,
            )
            c.token = refresh.apply(
                c.token, outcome, spec=spec, settings=self.settings, now=now, rng=self.rng
            )
            c.token = _keep_recorded(c.token, recorded, now)
            self.publisher.outcome(before, c.token, outcome, now)
        if _seen(before) != _seen(c.token):
            self._wake_users(c, only_allowed=True)
        await self.publish(c)
        now = self.clock()
        wake = next_wake(c.token, False, now)
        if c.count_due:  # changed while publishing: its own plan must not be lost
            wake = min(wake or now + COUNT_DELAY, now + COUNT_DELAY)
        if wake is not None:
            self.scheduler.at(c.name, wake)

    async def _secret_digest(
        self, c: ClusterApp, spec: ClusterLarkAppSpec, work: set[Work], now: float
    ) -> str | None:
        """The App Secret's digest when it changed and no refresh is due anyway."""
        if Work.CREDENTIALS not in work or refresh_due(c.token, work, now):
            return NOT_READ
        return await refresh.secret_digest(self.index.get, self.namespace, spec.app_secret_ref)

    # --- status -------------------------------------------------------------------------------
    def observed(self, c: ClusterApp) -> ClusterObserved:
        t, now = c.token, self.clock()
        token = None
        if t.held is not None:
            token = ClusterTokenFacts(
                t.held.earliest_expiry, t.refreshed_at, t.next_refresh_at, t.held.fingerprint()
            )
        served = sum(1 for key in c.users if self.admits(c.name, key[0]))
        return ClusterObserved(
            generation=c.generation,
            now=now,
            credentials=t.credentials,
            token=token,
            last_error=t.last_error,
            consecutive_failures=t.failures,
            larkapps=served,
            refused=len(c.users) - served,
        )

    async def publish(self, c: ClusterApp) -> None:
        c.count_due = False
        pub = c.published
        async with pub.lock:
            new = build_cluster_status(self.observed(c), pub.status).to_dict()
            patch = status_patch(new, pub.status)
            if patch is None:
                return
            try:
                await self.kube.patch_cluster_larkapp_status(c.name, patch)
            except KubeError as e:
                if e.status == 404:
                    return  # deleted meanwhile
                raise
            old, pub.status = pub.status, new
            for ev in transitions(old, new):
                try:
                    await self.kube.create_event(c.body_ref(), ev.type, ev.reason, ev.message)
                except KubeError as e:
                    log.warning("could not post Event %s: %s", ev.reason, e)


def _app_of(spec: ClusterLarkAppSpec) -> tuple[Any, ...]:
    return (spec.app_id, spec.app_secret_ref, spec.domain, spec.tokens)


def _keep_recorded(token: TokenState, recorded: Mapping[str, Any], now: float) -> TokenState:
    """After a restart the platform hands back the token it holds: the same token keeps the
    schedule and refresh time status recorded, so that nothing changes for its users."""
    held = token.held
    next_at = parse_rfc3339(recorded.get("nextRefreshAt"))
    if held is None or held.fingerprint() != recorded.get("fingerprint") or not next_at:
        return token
    if next_at <= now or next_at >= held.earliest_expiry:
        return token
    refreshed = parse_rfc3339(recorded.get("refreshedAt")) or token.refreshed_at
    return dataclasses.replace(token, next_refresh_at=next_at, refreshed_at=refreshed)
