"""Every store app's callback keys (Encrypt Key, Verification Token), as the LarkApps name
them: what the events endpoint verifies callbacks with.

Read by listing the LarkApps of the watched namespaces and reading the Secrets their
spec.store names, so that a standby replica (which runs no reconciler) verifies exactly as
the leader does. A listing is reused for `min_interval` seconds: a flood of forged
callbacks costs the apiserver nothing more.
`store_keys` is the pure part, for anything else that names a store app (ClusterLarkApp).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from lark_operator.callbacks import AppKeys
from lark_operator.credentials import CredentialError, secret_value
from lark_operator.kube import KubeClient, KubeError
from lark_operator.models import LarkAppSpec, StoreSpec

log = logging.getLogger("lark_operator.events")

ReadSecret = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


async def store_keys(
    app_id: str, store: StoreSpec, namespace: str, read_secret: ReadSecret
) -> AppKeys:
    """A store app's keys from the Secrets `store` names. Raises CredentialError."""
    ek, vt = store.encrypt_key_ref, store.verification_token_ref
    encrypt_key = secret_value(
        await read_secret(namespace, ek.name),
        ek.name,
        ek.key,
        namespace=namespace,
        field="spec.store.encryptKeyRef",
    )
    token = secret_value(
        await read_secret(namespace, vt.name),
        vt.name,
        vt.key,
        namespace=namespace,
        field="spec.store.verificationTokenRef",
    )
    return AppKeys(app_id, encrypt_key, token)


class KeyDirectory:
    def __init__(
        self,
        kube: KubeClient,
        namespaces: list[str],
        *,
        min_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.namespaces = kube, namespaces
        self.min_interval, self.clock = min_interval, clock
        self._keys: list[AppKeys] = []
        self._read_at: float | None = None

    async def keys(self, *, fresh: bool = False) -> list[AppKeys]:
        """The known keys; read again when never read, or when `fresh` is asked and the
        last read is older than min_interval."""
        now = self.clock()
        if self._read_at is None or (fresh and now - self._read_at >= self.min_interval):
            self._read_at = now
            self._keys = await self._read()
        return list(self._keys)

    def stale(self) -> bool:
        """Whether a `fresh` read would read again now."""
        return self._read_at is None or self.clock() - self._read_at >= self.min_interval

    def invalidate(self) -> None:
        """A store LarkApp or one of its key Secrets changed: read again next time."""
        self._read_at = None

    async def _read(self) -> list[AppKeys]:
        items: list[dict[str, Any]] = []
        try:
            scopes: list[str | None] = [*self.namespaces] or [None]
            for ns in scopes:
                items += await self.kube.list_larkapps(ns)
        except KubeError as e:
            log.warning("cannot list LarkApps for the store apps' callback keys: %s", e)
            return list(self._keys)  # keep what was known
        secrets: dict[tuple[str, str], Mapping[str, Any] | None] = {}

        async def read(ns: str, name: str) -> Mapping[str, Any] | None:
            if (ns, name) not in secrets:
                secrets[(ns, name)] = await self.kube.get_secret(ns, name)
            return secrets[(ns, name)]

        found: dict[tuple[str, str, str], AppKeys] = {}
        for item in items:
            meta = item.get("metadata") or {}
            try:
                spec = LarkAppSpec.parse(item.get("spec"))
            except ValidationError:
                continue
            if not spec.is_store or spec.store is None or spec.app_id is None:
                continue
            try:
                keys = await store_keys(spec.app_id, spec.store, meta.get("namespace", ""), read)
            except (CredentialError, KubeError) as e:
                log.info(
                    "LarkApp %s/%s: no callback keys (%s)",
                    meta.get("namespace"),
                    meta.get("name"),
                    getattr(e, "reason", type(e).__name__),
                )
                continue
            found[(keys.app_id, keys.encrypt_key, keys.verification_token)] = keys
        return list(found.values())
