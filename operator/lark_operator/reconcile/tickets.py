"""The store apps' app_tickets and learned tenants, kept in memory and in one labelled
Secret per app in the cluster resource namespace (tokens/ticketsecret.py): restarts and
standby replicas have them.

Callbacks write here (app/events.py: as `EventSink`) on whichever replica they reach; the
leader watches these Secrets, so a ticket or tenant stored by a standby reaches it within
a second or two (`secret_changed`). Whoever changes something tells the listeners (the
reconciler wakes the LarkApps of that app). A resend is asked at most once per
`resend_interval` per app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from lark_operator.kube import KubeAPI, KubeError
from lark_operator.tokens import ticketsecret
from lark_operator.tokens.ticketsecret import StoreRecord

log = logging.getLogger("lark_operator.tickets")

Listener = Callable[[str], None]


class TicketBook:
    def __init__(
        self,
        kube: KubeAPI,
        namespace: str,
        *,
        resend_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.namespace = kube, namespace
        self.resend_interval, self.clock = resend_interval, clock
        self.listeners: list[Listener] = []
        # Called once, when the first store app is looked at (the leader's watch of these
        # Secrets starts then: an operator without store apps needs no access to them).
        self.on_first_use: Callable[[], None] | None = None
        self._records: dict[str, StoreRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._known_rv: dict[str, str | None] = {}  # secret name -> rv we read or wrote
        self._resent_at: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- reading -------------------------------------------------------------------------
    async def record(self, app_id: str) -> StoreRecord:
        """The app's record, read from its Secret the first time."""
        if app_id not in self._records:
            if not self._records and self.on_first_use is not None:
                self.on_first_use()
            async with self._lock(app_id):
                if app_id not in self._records:
                    self._records[app_id] = await self._read(app_id)
        return self._records[app_id]

    @property
    def used(self) -> bool:
        """Some store app has been looked at (a standby that stored a callback, say)."""
        return bool(self._records)

    def cached(self, app_id: str) -> StoreRecord | None:
        return self._records.get(app_id)

    # --- what callbacks bring (EventSink) --------------------------------------------------
    async def ticket(self, app_id: str, ticket: str) -> None:
        now = self.clock()
        await self._change(app_id, lambda r: dataclasses.replace(r, ticket=ticket, received_at=now))

    async def tenant(self, app_id: str, event_type: str, tenant_key: str) -> None:
        def change(r: StoreRecord) -> StoreRecord:
            if event_type == "app_open":
                return dataclasses.replace(r, tenants=r.tenants | {tenant_key})
            return dataclasses.replace(r, tenants=r.tenants - {tenant_key})

        await self._change(app_id, change)

    async def drop_ticket(self, app_id: str, ticket: str) -> None:
        """The platform refused this ticket (10012): forget it, unless a newer one came."""

        def change(r: StoreRecord) -> StoreRecord:
            if r.ticket != ticket:
                return r
            return dataclasses.replace(r, ticket=None, received_at=None)

        await self._change(app_id, change, notify=False)

    def may_resend(self, app_id: str) -> bool:
        """True (and counted) when no resend was asked for this app within resend_interval."""
        now = self.clock()
        last = self._resent_at.get(app_id)
        if last is not None and now - last < self.resend_interval:
            return False
        self._resent_at[app_id] = now
        return True

    def resent_at(self, app_id: str) -> float | None:
        return self._resent_at.get(app_id)

    # --- the leader's watch of the ticket Secrets ------------------------------------------
    def secret_changed(self, event: str, namespace: str, name: str, rv: str | None) -> None:
        if rv is not None and self._known_rv.get(name) == rv:
            return  # our own write, or what we read (the initial listing included)
        for app_id in list(self._records):
            if ticketsecret.secret_name(app_id) == name:
                task = asyncio.ensure_future(self._reload(app_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def reread(self, app_id: str) -> StoreRecord:
        """Read the app's Secret again (no ticket held: another replica may have stored one
        while a watch event was missed)."""
        await self._reload(app_id)
        return self._records[app_id]

    async def _reload(self, app_id: str) -> None:
        async with self._lock(app_id):
            before = self._records.get(app_id)
            self._records[app_id] = after = await self._read(app_id)
        if after != before:
            log.info("store state of %s changed in its Secret (another replica)", app_id)
            self._notify(app_id)

    # --- internals -------------------------------------------------------------------------
    def _lock(self, app_id: str) -> asyncio.Lock:
        return self._locks.setdefault(app_id, asyncio.Lock())

    async def _read(self, app_id: str) -> StoreRecord:
        name = ticketsecret.secret_name(app_id)
        try:
            secret = await self.kube.get_secret(self.namespace, name)
        except KubeError as e:
            log.warning("cannot read ticket Secret %s/%s: %s", self.namespace, name, e)
            return self._records.get(app_id, StoreRecord(app_id))
        self._known_rv[name] = ((secret or {}).get("metadata") or {}).get("resourceVersion")
        return ticketsecret.read(secret, app_id)

    async def _change(
        self, app_id: str, change: Callable[[StoreRecord], StoreRecord], *, notify: bool = True
    ) -> None:
        """Apply `change` in memory at once (the leader acts on it), then to the Secret."""
        await self.record(app_id)
        async with self._lock(app_id):
            before = self._records[app_id]
            after = change(before)
            self._records[app_id] = after
        if after != before and notify:
            self._notify(app_id)
        async with self._lock(app_id):
            await self._persist(app_id, change)

    async def _persist(self, app_id: str, change: Callable[[StoreRecord], StoreRecord]) -> None:
        name = ticketsecret.secret_name(app_id)
        for _ in range(5):
            try:
                actual = await self.kube.get_secret(self.namespace, name)
                if actual is not None and ticketsecret.app_of(actual) not in (None, app_id):
                    log.error(
                        "Secret %s/%s holds another app's state: left alone", self.namespace, name
                    )
                    return
                # Read-modify-write: another replica's change since our read is kept.
                record = change(ticketsecret.read(actual, app_id))
                desired = ticketsecret.build(self.namespace, record)
                if actual is None:
                    written = await self.kube.create_secret(self.namespace, desired)
                else:
                    meta = {
                        **actual["metadata"],
                        **{
                            "labels": {
                                **(actual["metadata"].get("labels") or {}),
                                **desired["metadata"]["labels"],
                            },
                            "annotations": desired["metadata"]["annotations"],
                        },
                    }
                    written = await self.kube.replace_secret(
                        self.namespace, name, {**desired, "metadata": meta}
                    )
                self._known_rv[name] = (written.get("metadata") or {}).get("resourceVersion")
                return
            except KubeError as e:
                if e.status == 409:
                    continue
                log.warning("cannot write ticket Secret %s/%s: %s", self.namespace, name, e)
                return
        log.warning("ticket Secret %s/%s kept changing: not written", self.namespace, name)

    def _notify(self, app_id: str) -> None:
        for listener in self.listeners:
            listener(app_id)
