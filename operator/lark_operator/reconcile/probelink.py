"""The link between LarkApps and the shared probe scheduler (probes/scheduler.py): which
dependencies a LarkApp subscribes to, at which URL (read from its Secrets), and a made-up
failure when a URL cannot be read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from lark_operator.credentials import CredentialError, secret_value
from lark_operator.models import LarkAppSpec
from lark_operator.probes.result import ProbeResult, failure
from lark_operator.probes.scheduler import ProbeScheduler
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
            cfg = getattr(spec.probes, dep)
            ref = cfg.dsn_secret_ref if dep == Dependency.POSTGRES else cfg.url_secret_ref
            try:
                url = await self._read(app, dep, ref.name, ref.key)
                mgmt = None
                if dep == Dependency.RABBITMQ and cfg.management_url_secret_ref is not None:
                    m = cfg.management_url_secret_ref
                    mgmt = await self._read(app, dep, m.name, m.key)
            except _Unreadable as e:
                self.probes.unsubscribe(app.key, dep)
                await self.on_result(app.key, e.result)
                continue
            self.probes.subscribe(
                app.key,
                dep,
                url,
                cfg,
                spec.probes.interval_seconds,
                spec.probes.timeout_seconds,
                self.on_result,
                management_url=mgmt,
            )

    def forget(self, key: Key) -> None:
        if self.probes is not None:
            self.probes.unsubscribe(key)

    async def _read(self, app: App, dep: Dependency, name: str, key: str) -> str:
        secret = await self.index.get(app.namespace, name)
        try:
            return secret_value(secret, name, key, namespace=app.namespace)
        except CredentialError as e:
            # A value that is not text cannot be a URL: say so in the probes' words.
            reason = Reason.INVALID_URL if e.reason == Reason.INVALID_CREDENTIALS else e.reason
            raise _Unreadable(failure(dep, reason, e.message)) from None


class _Unreadable(Exception):
    def __init__(self, result: ProbeResult):
        self.result = result
