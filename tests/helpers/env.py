"""One namespace, one emulator, one or more operators: the world most integration tests
need, with a scan for leaked secrets at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lark_operator.tokens.secret import read_token_secret
from tests.helpers.kube import Kube
from tests.helpers.procs import Emulator, Operator


class Env:
    """One namespace, one emulator, one operator watching that namespace."""

    def __init__(self, kube: Kube, ns: str, emu: Emulator, make_op: Callable[..., Operator]):
        self.kube, self.ns, self.emu, self._make_op = kube, ns, emu, make_op
        self.ops: list[Operator] = []
        self.secrets: set[str] = set()

    def start_operator(self, **kw: Any) -> Operator:
        op = self._make_op([self.ns], allowed=[self.emu.url], **kw)
        self.ops.append(op)
        return op

    @property
    def op(self) -> Operator:
        return self.ops[-1]

    def app_secret(self, name: str, value: str, key: str = "appSecret") -> None:
        self.secrets.add(value)
        self.kube.put_secret(self.ns, name, {key: value})

    def larkapp(
        self, name: str, app_id: str, secret_name: str = "lark-secret", **spec: Any
    ) -> None:
        body = {
            "appId": app_id,
            "appSecretRef": {"name": secret_name},
            "domain": self.emu.url,
            "refresh": {"renewBefore": "1m", "jitter": 0},
        }
        body.update(spec)
        self.kube.create_larkapp(self.ns, name, body)

    def token(self, name: str, key: str = "tenant_access_token") -> str | None:
        data = self.kube.secret(self.ns, f"{name}-lark-token")
        if data and data.get(key):
            self.secrets.add(data[key])
            return data[key]
        return None

    def ready(self, name: str) -> bool:
        c = self.kube.condition(self.ns, name, "Ready")
        return bool(c and c["status"] == "True")

    def status_matches_secret(self, name: str) -> bool:
        """status.token describes exactly the tokens in the Secret (no half-written state:
        the status write that follows the Secret's has landed)."""
        obj = self.kube.larkapp(self.ns, name)
        fp = ((obj.get("status") or {}).get("token") or {}).get("fingerprint")
        secret = self.kube.secret_obj(self.ns, f"{name}-lark-token")
        body = self.kube.api.sanitize_for_serialization(secret) if secret else None
        held = read_token_secret(body)
        return bool(fp) and held is not None and held.fingerprint() == fp

    def assert_no_leaks(self) -> None:
        """No app secret or token in logs, Events or status."""
        texts = [op.logs() for op in self.ops]
        texts += [f"{e.reason} {e.message}" for e in self.kube.events(self.ns)]
        for item in self.kube.custom.list_namespaced_custom_object(
            "larkservice.io", "v1alpha1", self.ns, "larkapps"
        )["items"]:
            texts.append(str(item.get("status")))
        joined = "\n".join(texts)
        for secret in self.secrets:
            assert secret not in joined, "a secret or token leaked into logs/Events/status"
