"""In-memory stand-ins for unit tests of the reconciler and the token store: FakeKube is a
kube.KubeAPI, ScriptedClient an openplatform.TokenSource (mypy checks both against the
protocols). Integration tests use the real apiserver and the emulator."""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import Callable
from typing import Any

from lark_operator.kube import KubeError
from lark_operator.openplatform import OpenPlatformError, Token


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.larkapps: dict[str, dict[str, Any]] = {}  # by name, for get_larkapp
        self.status_patches: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []
        self.meta_patches: list[dict[str, Any]] = []
        self.cluster_status_patches: list[tuple[str, dict[str, Any]]] = []
        # target.rolloutRestart: (ns, kind, name) -> object, and the patches sent
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.workload_patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.workload_error: KubeError | None = None
        self._rv = itertools.count(1)

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        s = self.secrets.get((ns, name))
        return copy.deepcopy(s) if s else None

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (ns, name) in self.secrets:
            raise KubeError(409, "exists", "AlreadyExists")
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        self.secrets[(ns, name)] = body
        return copy.deepcopy(body)

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(next(self._rv))
        self.secrets[(ns, name)] = body
        return copy.deepcopy(body)

    async def patch_secret(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        live = self.secrets.get((ns, name))
        if live is None:
            raise KubeError(404, "not found", "NotFound")
        meta = dict(patch.get("metadata", {}))
        rv = meta.pop("resourceVersion", None)
        if rv is not None and rv != live["metadata"].get("resourceVersion"):
            raise KubeError(409, "conflict", "Conflict")
        live["metadata"].update(meta)
        live["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(live)

    async def delete_secret(
        self, ns: str, name: str, *, uid: str | None = None, resource_version: str | None = None
    ) -> bool:
        live = self.secrets.get((ns, name))
        if live is None:
            return False
        if resource_version is not None and resource_version != live["metadata"].get(
            "resourceVersion"
        ):
            raise KubeError(409, "precondition failed", "Conflict")
        del self.secrets[(ns, name)]
        return True

    async def get_larkapp(self, ns: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.larkapps.get(name))

    async def patch_larkapp_status(
        self, ns: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append((ns, name, copy.deepcopy(patch)))
        return {}

    async def patch_larkapp(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.meta_patches.append(patch)
        return {}

    async def create_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        self.events.append((type_, reason, message))

    async def patch_cluster_larkapp_status(self, name: str, patch: dict[str, Any]) -> None:
        self.cluster_status_patches.append((name, copy.deepcopy(patch)))

    async def get_workload(self, ns: str, kind: str, name: str) -> dict[str, Any] | None:
        w = self.workloads.get((ns, kind, name))
        return copy.deepcopy(w) if w else None

    async def patch_workload(
        self, ns: str, kind: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        if self.workload_error is not None:
            raise self.workload_error
        self.workload_patches.append((ns, kind, name, patch))
        live = self.workloads[(ns, kind, name)]
        template = live.setdefault("spec", {}).setdefault("template", {})
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
        annotations.update(patch["spec"]["template"]["metadata"]["annotations"])
        live["metadata"]["generation"] = live["metadata"].get("generation", 1) + 1
        return copy.deepcopy(live)

    def put_app_secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(ns, name)] = {
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "0"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }


class ScriptedClient:
    """An Open Platform client whose answers are scripted per call."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.calls = 0
        self.error: OpenPlatformError | None = None
        self.ttl = 7200.0
        self.invalidated = 0

    async def get_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        token_type: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        self.calls += 1
        if self.error is not None:
            raise self.error
        now = self.clock()
        return Token(f"tok-{self.calls}", token_type, now + self.ttl, now)

    def invalidate(self, base_url: str, app_id: str, app_secret: str, token_type: str) -> None:
        self.invalidated += 1

    # Self-built apps only: a unit test of store apps scripts its own (test_storeapp.py).
    async def store_app_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_ticket: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        raise AssertionError("ScriptedClient serves self-built apps only")

    async def store_tenant_token(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        app_token: str,
        tenant_key: str,
        *,
        min_valid_for: float = 0.0,
        force: bool = False,
        request_id: str | None = None,
    ) -> Token:
        raise AssertionError("ScriptedClient serves self-built apps only")

    def invalidate_store(self, base_url: str, app_id: str, app_secret: str) -> None:
        raise AssertionError("ScriptedClient serves self-built apps only")

    async def resend_ticket(
        self, base_url: str, app_id: str, app_secret: str, *, request_id: str | None = None
    ) -> None:
        raise AssertionError("ScriptedClient serves self-built apps only")

    async def bot_info(
        self, base_url: str, tenant_token: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """An enabled bot (the availability check runs after every refresh)."""
        return {"activate_status": 2, "app_name": "scripted"}
