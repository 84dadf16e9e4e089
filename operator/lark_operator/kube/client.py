"""The one Kubernetes API wrapper: an aiohttp client for exactly what the operator does.

Secrets (get/create/replace/delete/patch), LarkApp and ClusterLarkApp status patches, the
pod-template annotation of workloads (target.rolloutRestart), Events, Leases (leader
election), and a metadata-only watch of Secrets. A thin client keeps memory flat at
thousands of objects (no model classes), and the metadata-only watch lets the operator
notice changes to the Secrets it references without downloading every Secret's data in
the cluster.
Credentials come from `loader.load_auth` — the same loader the CLI uses — and renew
themselves (a rotated token file, an expired exec credential); after a 401 a renewable
credential is fetched anew and the request tried once more.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from lark_operator import metrics
from lark_operator.kube.auth import Auth
from lark_operator.kube.errors import Gone, KubeError, from_response
from lark_operator.kube.loader import load_auth
from lark_operator.vocabulary.names import CLUSTER_PLURAL, GROUP, PLURAL, VERSION

log = logging.getLogger("lark_operator.kube")

METADATA_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# The apps/v1 workloads target.rolloutRestart may name, and nothing else.
WORKLOAD_PLURALS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}


class KubeClient:
    def __init__(self, auth: Auth | None = None, *, max_connections: int = 32):
        self._auth = auth or load_auth()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def server(self) -> str:
        return self._auth.server

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=self._auth.ssl_context, limit=self._max_connections
                ),
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None),
            )
        return self._session

    async def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        credential = self._auth.credential
        if credential.due():  # reads a file or runs a plugin: not on the event loop
            await asyncio.to_thread(credential.renew)
        h = {"Accept": "application/json", "User-Agent": "lark-operator"}
        authorization = credential.header()
        if authorization:
            h["Authorization"] = authorization
        h.update(extra or {})
        return h

    async def _renewed_after_401(self, refused: str | None) -> bool:
        """Whether there is now a credential other than the one just refused (renewed
        here, or by a concurrent request that was refused too)."""
        credential = self._auth.credential
        if credential.header() == refused:
            credential.invalidate()
            if credential.due():
                await asyncio.to_thread(credential.renew)
        return credential.header() != refused

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        timeout: float = 30.0,
        accept: str | None = None,
    ) -> Any:
        url = self._auth.server + path + (("?" + urlencode(params)) if params else "")
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if body is not None else {}
        if accept:
            headers["Accept"] = accept
        status, raw, sent = await self._send(method, url, data, headers, timeout)
        if status == 401 and await self._renewed_after_401(sent):
            status, raw, _ = await self._send(method, url, data, headers, timeout)
        if status >= 400:
            raise from_response(status, raw)
        return json.loads(raw) if raw else None

    async def _send(
        self, method: str, url: str, data: str | None, extra: dict[str, str], timeout: float
    ) -> tuple[int, bytes, str | None]:
        """(status, body, the Authorization sent)."""
        http = await self._http()
        headers = await self._headers(extra)
        started = time.monotonic()
        async with http.request(
            method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            raw = await resp.read()
            metrics.KUBE_REQUEST_DURATION.labels(method).observe(time.monotonic() - started)
            return resp.status, raw, headers.get("Authorization")

    # --- Secrets ------------------------------------------------------------------------
    @staticmethod
    def _secret_path(ns: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{quote(ns)}/secrets"
        return f"{base}/{quote(name)}" if name else base

    async def get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", self._secret_path(ns, name)))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create_secret(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", self._secret_path(ns), body))

    async def replace_secret(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request("PUT", self._secret_path(ns, name), body))

    async def patch_secret(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request(
                "PATCH",
                self._secret_path(ns, name),
                patch,
                content_type="application/merge-patch+json",
            )
        )

    async def delete_secret(
        self,
        ns: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete (False: there was none). With `uid`/`resource_version`, only that very
        Secret in that version: anything else answers 409 Conflict."""
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        body = (
            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions}
            if preconditions
            else None
        )
        try:
            await self.request("DELETE", self._secret_path(ns, name), body)
            return True
        except KubeError as e:
            if e.status == 404:
                return False
            raise

    # --- LarkApps -------------------------------------------------------------------------
    @staticmethod
    def _larkapp_path(ns: str | None, name: str | None = None) -> str:
        if ns is None:
            return f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/{PLURAL}"
        return f"{base}/{quote(name)}" if name else base

    async def get_larkapp(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", self._larkapp_path(ns, name)))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def list_larkapps(self, ns: str | None = None) -> list[dict[str, Any]]:
        return list((await self.request("GET", self._larkapp_path(ns)))["items"])

    async def patch_larkapp(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request(
                "PATCH",
                self._larkapp_path(ns, name),
                patch,
                content_type="application/merge-patch+json",
            )
        )

    async def patch_larkapp_status(
        self, ns: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(
            await self.request(
                "PATCH",
                self._larkapp_path(ns, name) + "/status",
                {"status": patch},
                content_type="application/merge-patch+json",
            )
        )

    # --- ClusterLarkApps -----------------------------------------------------------------------
    @staticmethod
    def _cluster_larkapp_path(name: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}"
        return f"{base}/{quote(name, safe='')}" if name else base

    async def list_cluster_larkapps(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", self._cluster_larkapp_path()))["items"])

    async def patch_cluster_larkapp_status(self, name: str, patch: dict[str, Any]) -> None:
        await self.request(
            "PATCH",
            self._cluster_larkapp_path(name) + "/status",
            {"status": patch},
            content_type="application/merge-patch+json",
        )

    # --- Workloads (target.rolloutRestart) -----------------------------------------------------
    @staticmethod
    def _workload_path(ns: str, kind: str, name: str) -> str:
        plural = WORKLOAD_PLURALS[kind]  # KeyError: not a kind the operator may touch
        return f"/apis/apps/v1/namespaces/{quote(ns, safe='')}/{plural}/{quote(name, safe='')}"

    async def get_workload(self, ns: str, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", self._workload_path(ns, kind, name)))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def patch_workload(
        self, ns: str, kind: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(
            await self.request(
                "PATCH",
                self._workload_path(ns, kind, name),
                patch,
                content_type="application/merge-patch+json",
            )
        )

    # --- Leases (leader election) ----------------------------------------------------------
    @staticmethod
    def _lease_path(ns: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(ns)}/leases"
        return f"{base}/{quote(name)}" if name else base

    async def get_lease(
        self, ns: str, name: str, *, timeout: float = 30.0
    ) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", self._lease_path(ns, name), timeout=timeout))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create_lease(
        self, ns: str, body: dict[str, Any], *, timeout: float = 30.0
    ) -> dict[str, Any]:
        return dict(await self.request("POST", self._lease_path(ns), body, timeout=timeout))

    async def replace_lease(
        self, ns: str, name: str, body: dict[str, Any], *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """PUT with the body's resourceVersion: a Conflict means someone else wrote first."""
        return dict(await self.request("PUT", self._lease_path(ns, name), body, timeout=timeout))

    # --- Events ---------------------------------------------------------------------------
    async def create_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        meta = involved["metadata"]
        # A cluster-scoped object's Events live in "default" (the apiserver's rule), with no
        # namespace on the involved object: `kubectl describe` finds them there.
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": involved.get("kind", "LarkApp"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "lark-operator"},
            "reportingComponent": "lark-operator",
            "reportingInstance": os.environ.get("HOSTNAME", "lark-operator"),
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        await self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body)

    # --- Watching metadata (Secrets, namespaces) ---------------------------------------------
    async def watch_secret_metadata(
        self, namespace: str | None = None, label_selector: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield (event type, PartialObjectMetadata) forever: an initial ('SYNC', item) per
        existing Secret after each (re)list and ('SYNCED', {}) when it is complete, then
        ADDED/MODIFIED/DELETED. Only metadata crosses the wire — never the Secrets' data."""
        path = f"/api/v1/namespaces/{quote(namespace)}/secrets" if namespace else "/api/v1/secrets"
        async for item in self.watch_metadata(path, label_selector):
            yield item

    async def watch_namespace_metadata(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Namespaces' metadata (their labels), as `watch_metadata` yields it."""
        async for item in self.watch_metadata("/api/v1/namespaces"):
            yield item

    async def watch_metadata(
        self, path: str, label_selector: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The objects at `path` as PartialObjectMetadata, forever: after each (re)list a
        ('SYNC', item) per object and one ('SYNCED', {}), then ADDED/MODIFIED/DELETED."""
        params = {"labelSelector": label_selector} if label_selector else {}
        while True:
            listing = await self.request("GET", path, params=params, accept=METADATA_ACCEPT)
            rv = listing["metadata"]["resourceVersion"]
            for item in listing.get("items") or []:
                yield "SYNC", item
            yield "SYNCED", {}  # the listing is complete: the watch is established
            try:
                while True:
                    async for etype, obj in self._watch_once(path, params, rv):
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if etype == "BOOKMARK":
                            continue
                        yield etype, obj
            except Gone:
                log.info("watch of %s expired (410); listing again", path)
            except (TimeoutError, aiohttp.ClientError) as e:
                log.warning("watch of %s interrupted (%s); listing again", path, type(e).__name__)
                await asyncio.sleep(1)

    async def _watch_once(
        self, path: str, params: dict[str, str], rv: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        http = await self._http()
        q = dict(
            params,
            watch="true",
            resourceVersion=rv,
            allowWatchBookmarks="true",
            timeoutSeconds="300",
        )
        headers = await self._headers({"Accept": METADATA_WATCH_ACCEPT})
        async with http.get(
            self._auth.server + path + "?" + urlencode(q),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=330),
        ) as resp:
            if resp.status == 401:
                self._auth.credential.invalidate()  # renewed before the next list
            if resp.status >= 400:
                raise from_response(resp.status, await resp.read())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    if obj.get("code") == 410:
                        raise Gone(410, str(obj.get("message", "")), "Expired")
                    raise from_response(int(obj.get("code") or 500), json.dumps(obj).encode())
                yield event["type"], event["object"]
