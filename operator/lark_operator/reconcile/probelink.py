"""The link between LarkApps and the shared probe scheduler (probes/scheduler.py): which
dependencies a LarkApp subscribes to, at which URL (read from its Secrets), and a made-up
failure when a URL cannot be read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from lark_operator.credentials import CredentialError, secret_value
from lark_operator.models import LarkAppSpec
from lark_operator.probes.result import ProbeResult, failure
from lark_operator.probes.scheduler import ProbeScheduler
from lark_operator.probes.target import ReadValue, resolve
from lark_operator.reconcile.index import SecretIndex
from lark_operator.reconcile.state import App, Key
from lark_operator.vocabulary.dependencies import DEPENDENCIES, Dependency
from lark_operator.vocabulary.reasons import Reason

OnResult = Callable[[Hashable, ProbeResult], Awaitable[None]]


class ProbeLink:
    def __init__(self, probes: ProbeScheduler | None, index: SecretIndex, on_result: OnResult):
        self.probes, self.index, self.on_result = probes, index, on_result

    async def sync(
        self, app: App, spec: LarkAppSpec, dropped: Callable[[Dependency], None]
    ) -> None:
        """Subscribe to what the spec configures, unsubscribe from the rest (`dropped` is
        told of each dependency no longer probed)."""
        if self.probes is None:
            return
        configured = set(spec.probes.configured)
        for dep in DEPENDENCIES:
            if dep not in configured:
                self.probes.unsubscribe(app.key, dep)
                dropped(dep)
                continue
            try:
                target = await resolve(dep, spec.probes, self._reader(app, dep))
            except _Unreadable as e:
                self.probes.unsubscribe(app.key, dep)
                await self.on_result(app.key, e.result)
                continue
            self.probes.subscribe(
                app.key,
                dep,
                target.url,
                target.cfg,
                spec.probes.interval_seconds,
                spec.probes.timeout_seconds,
                self.on_result,
                management_url=target.management_url,
            )

    def forget(self, key: Key) -> None:
        if self.probes is not None:
            self.probes.unsubscribe(key)

    def _reader(self, app: App, dep: str) -> ReadValue:
        async def read(name: str, key: str, _field: str) -> str:
            secret = await self.index.get(app.namespace, name)
            try:
                return secret_value(secret, name, key, namespace=app.namespace)
            except CredentialError as e:
                # A value that is not text cannot be a URL: say so in the probes' words.
                bad = e.reason == Reason.INVALID_CREDENTIALS
                reason = Reason.INVALID_URL if bad else e.reason
                raise _Unreadable(failure(dep, reason, e.message)) from None

        return read


class _Unreadable(Exception):
    def __init__(self, result: ProbeResult):
        self.result = result
