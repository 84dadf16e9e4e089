"""What the reconciler and the token store use of the apiserver, as a protocol: KubeClient
is the implementation, tests hand in a fake (tests/unit/fakes.py) that mypy checks
against the same list."""

from __future__ import annotations

from typing import Any, Protocol


class KubeAPI(Protocol):
    # Secrets
    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None: ...

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_secret(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def delete_secret(
        self, ns: str, name: str, *, uid: str | None = None, resource_version: str | None = None
    ) -> bool: ...

    # LarkApps
    async def get_larkapp(self, ns: str, name: str) -> dict[str, Any] | None: ...

    async def patch_larkapp(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_larkapp_status(
        self, ns: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    # ClusterLarkApps (cluster-scoped) and the workloads of target.rolloutRestart
    async def patch_cluster_larkapp_status(self, name: str, patch: dict[str, Any]) -> None: ...

    async def get_workload(self, ns: str, kind: str, name: str) -> dict[str, Any] | None: ...

    async def patch_workload(
        self, ns: str, kind: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    # Events
    async def create_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None: ...
