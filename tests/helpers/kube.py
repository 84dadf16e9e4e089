"""A small synchronous view of the real apiserver for tests (official Python client)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from lark_devenv.binaries import find
from lark_operator.vocabulary.names import CLUSTER_PLURAL, GROUP, PLURAL, VERSION


class Kube:
    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)  # untyped answers: plain dicts
        self.kubectl_bin = str(find("kubectl"))

    # --- kubectl, as a user would ---------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(
        self, manifest: dict[str, Any] | str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.kubectl("apply", "-f", "-", input=text, check=check)

    # --- LarkApps ---------------------------------------------------------------------------
    def larkapp(self, ns: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))

    def larkapp_gone(self, ns: str, name: str) -> bool:
        """True once the apiserver answers 404 for the LarkApp; any other failure (a 403, the
        apiserver down) is raised, never read as "deleted"."""
        try:
            self.larkapp(ns, name)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    def create_larkapp(
        self, ns: str, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LarkApp",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec,
        }
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body))

    def patch_larkapp(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
        )

    def delete_larkapp(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    def condition(self, ns: str, name: str, ctype: str) -> dict[str, Any] | None:
        status = self.larkapp(ns, name).get("status") or {}
        for c in status.get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return None

    # --- ClusterLarkApps --------------------------------------------------------------------
    def cluster_larkapp(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, CLUSTER_PLURAL, name))

    def create_cluster_larkapp(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterLarkApp",
            "metadata": {"name": name},
            "spec": spec,
        }
        return dict(self.custom.create_cluster_custom_object(GROUP, VERSION, CLUSTER_PLURAL, body))

    def patch_cluster_larkapp(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.custom.patch_cluster_custom_object(GROUP, VERSION, CLUSTER_PLURAL, name, patch)
        )

    def delete_cluster_larkapp(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(GROUP, VERSION, CLUSTER_PLURAL, name)

    def cluster_condition(self, name: str, ctype: str) -> dict[str, Any] | None:
        for c in (self.cluster_larkapp(name).get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return dict(c)
        return None

    # --- Namespaces and workloads ---------------------------------------------------------
    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        meta = client.V1ObjectMeta(name=name, labels=labels or None)
        self.core.create_namespace(client.V1Namespace(metadata=meta))

    def label_namespace(self, name: str, labels: dict[str, str | None]) -> None:
        self.core.patch_namespace(name, {"metadata": {"labels": labels}})

    def create_deployment(self, ns: str, name: str) -> dict[str, Any]:
        """A Deployment as a workload would be (nothing runs it: no controllers here)."""
        labels = {"app": name}
        body: Any = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
                },
            },
        }
        return dict(self.apps.create_namespaced_deployment(ns, body).to_dict())

    def deployment(self, ns: str, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, ns)

    # --- Secrets --------------------------------------------------------------------------
    def secret(self, ns: str, name: str) -> dict[str, str] | None:
        """Decoded data of a Secret, or None."""
        s = self.secret_obj(ns, name)
        if s is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}

    def secret_obj(self, ns: str, name: str) -> Any:
        try:
            return self.core.read_namespaced_secret(name, ns)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def put_secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        try:
            self.core.create_namespaced_secret(ns, body)
        except ApiException as e:
            if e.status != 409:
                raise
            self.core.replace_namespaced_secret(
                name, ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
            )

    def delete_secret(self, ns: str, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, ns)
        except ApiException as e:
            if e.status != 404:
                raise

    def events(self, ns: str, name: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(ns).items
        return [e for e in items if name is None or e.involved_object.name == name]

    def event_reasons(self, ns: str, name: str) -> list[str]:
        return [
            e.reason
            for e in sorted(self.events(ns, name), key=lambda e: e.metadata.creation_timestamp)
        ]

    def event_messages(self, ns: str, name: str) -> list[str]:
        return [e.message for e in self.events(ns, name)]


def write_kubeconfig_copy(src: str, dst: Path) -> str:
    dst.write_text(Path(src).read_text())
    return str(dst)


def sa_kubeconfig(kube: Kube, namespace: str, sa: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token from the
    TokenRequest API; the local apiserver signs them), against the same server."""
    token = kube.kubectl("create", "token", sa, "-n", namespace, "--duration", "1h").stdout.strip()
    cfg = yaml.safe_load(Path(kube.kubeconfig).read_text())
    ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
    ctx = next(c for c in cfg["contexts"] if c["name"] == ctx_name)["context"]
    cluster = dict(next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"])["cluster"])
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str(Path(kube.kubeconfig).parent / ca)
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(out))
    path.chmod(0o600)
    return str(path)
