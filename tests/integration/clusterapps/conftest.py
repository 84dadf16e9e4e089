"""ClusterLarkApp tests: one emulator, a cluster resource namespace holding the App Secret,
LarkApps in namespaces of their own, and an operator watching every namespace (as the
chart runs it by default), with a scan for leaked secrets at teardown."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lark_operator.vocabulary.names import CLUSTER_KIND
from tests.helpers.kube import Kube
from tests.helpers.procs import Emulator, Operator


class ClusterEnv:
    def __init__(self, kube: Kube, emu: Emulator, make_op: Callable[..., Operator]):
        self.kube, self.emu, self._make_op = kube, emu, make_op
        self.crns = self.namespace()
        self.ops: list[Operator] = []
        self.secrets: set[str] = set()
        self.namespaces: list[str] = [self.crns]
        self.cluster_apps: list[str] = []

    def namespace(self, labels: dict[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        self.kube.create_namespace(name, labels)
        if hasattr(self, "namespaces"):
            self.namespaces.append(name)
        return name

    def start_operator(self, **kw: Any) -> Operator:
        extra = ["--cluster-resource-namespace", self.crns, *kw.pop("extra", ())]
        op = self._make_op([], allowed=[self.emu.url], extra=extra, **kw)
        self.ops.append(op)
        return op

    @property
    def op(self) -> Operator:
        return self.ops[-1]

    def app_secret(self, value: str, name: str = "lark-app") -> None:
        self.secrets.add(value)
        self.kube.put_secret(self.crns, name, {"appSecret": value})

    def cluster_app(
        self, name: str, app_id: str, allowed: dict[str, Any], secret: str = "lark-app", **spec: Any
    ) -> None:
        body = {
            "appId": app_id,
            "appSecretRef": {"name": secret},
            "domain": self.emu.url,
            "refresh": {"renewBefore": "1m", "jitter": 0},
            "allowedNamespaces": allowed,
            **spec,
        }
        self.kube.create_cluster_larkapp(name, body)
        self.cluster_apps.append(name)

    def larkapp(self, ns: str, name: str, cluster: str, **spec: Any) -> None:
        self.kube.create_larkapp(ns, name, {"appRef": {"name": cluster}, **spec})

    def token(self, ns: str, name: str, key: str = "tenant_access_token") -> str | None:
        data = self.kube.secret(ns, f"{name}-lark-token")
        if data and data.get(key):
            self.secrets.add(data[key])
            return data[key]
        return None

    def condition(self, ns: str, name: str, ctype: str) -> dict[str, Any] | None:
        return self.kube.condition(ns, name, ctype)

    def ready(self, ns: str, name: str) -> bool:
        c = self.condition(ns, name, "Ready")
        return bool(c and c["status"] == "True")

    def secret_values_outside(self, namespace: str) -> dict[str, set[str]]:
        """Every Secret value (decoded) per namespace of this test, but `namespace`."""
        out: dict[str, set[str]] = {}
        for ns in self.namespaces:
            if ns == namespace:
                continue
            for s in self.kube.core.list_namespaced_secret(ns).items:
                for v in (s.data or {}).values():
                    out.setdefault(ns, set()).add(base64.b64decode(v).decode(errors="replace"))
        return out

    def assert_no_leaks(self) -> None:
        texts = [op.logs() for op in self.ops]
        for ns in [*self.namespaces, "default"]:
            texts += [f"{e.reason} {e.message}" for e in self.kube.events(ns)]
            if ns == "default":
                continue
            for item in self.kube.custom.list_namespaced_custom_object(
                "larkservice.io", "v1alpha1", ns, "larkapps"
            )["items"]:
                texts.append(str(item.get("status")))
        for name in self.cluster_apps:
            try:
                texts.append(str(self.kube.cluster_larkapp(name).get("status")))
            except Exception:
                pass
        joined = "\n".join(texts)
        for secret in self.secrets:
            assert secret not in joined, "a secret or token leaked into logs/Events/status"

    def cleanup(self) -> None:
        for name in self.cluster_apps:
            try:
                self.kube.delete_cluster_larkapp(name)
            except Exception:
                pass
        # The LarkApps go too, finalizers dropped: namespaces never finish deleting here (no
        # controllers), and a LarkApp left naming "shared" would be counted by the next
        # test's ClusterLarkApp of that name as one it refuses.
        for ns in self.namespaces:
            for item in self.kube.custom.list_namespaced_custom_object(
                "larkservice.io", "v1alpha1", ns, "larkapps"
            )["items"]:
                name = item["metadata"]["name"]
                try:
                    self.kube.custom.patch_namespaced_custom_object(
                        "larkservice.io",
                        "v1alpha1",
                        ns,
                        "larkapps",
                        name,
                        {"metadata": {"finalizers": None}},
                    )
                    self.kube.custom.delete_namespaced_custom_object(
                        "larkservice.io", "v1alpha1", ns, "larkapps", name
                    )
                except Exception:
                    pass


@pytest.fixture
def cluster_env(
    kube: Kube, emulator_factory: Any, operator_factory: Any
) -> Iterator[Callable[..., ClusterEnv]]:
    made: list[ClusterEnv] = []

    def make(apps: dict[str, str], start: bool = True, **emu_kw: Any) -> ClusterEnv:
        env = ClusterEnv(kube, emulator_factory(apps, **emu_kw), operator_factory)
        env.secrets.update(apps.values())
        if start:
            env.start_operator()
        made.append(env)
        return env

    yield make
    for env in made:
        try:
            env.assert_no_leaks()
        finally:
            env.cleanup()


def cluster_events(kube: Kube, name: str) -> list[Any]:
    return [
        e
        for e in kube.events("default", name)
        if e.involved_object.kind == CLUSTER_KIND and e.involved_object.name == name
    ]
