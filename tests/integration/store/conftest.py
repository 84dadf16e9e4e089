"""A store app's world: a namespace (also the cluster resource namespace, where the ticket
Secret lives), the emulator with one store app pushing to the operator's events port over
loopback, and the operator (restartable on the same port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lark_devenv.controlplane import free_port
from lark_operator.tokens.ticketsecret import secret_name
from tests.helpers.env import Env
from tests.helpers.kube import Kube
from tests.helpers.procs import Emulator

APP, SECRET = "cli_store01", "store-app-secret-value"
ENCRYPT_KEY, VERIFICATION_TOKEN = "encrypt-key-value-0001", "verification-token-0001"
TICKET_SECRET = secret_name(APP)


class StoreEnv(Env):
    events_port: int

    def start_operator(self, **kw: Any) -> Any:
        extra = ["--cluster-resource-namespace", self.ns, *kw.pop("extra", [])]
        env = {"LARK_OPERATOR_TICKET_RESEND_INTERVAL_SECONDS": "3600", **kw.pop("env", {})}
        kw.setdefault("events_port", self.events_port)
        return super().start_operator(extra=extra, env=env, **kw)

    def store_larkapp(self, name: str, tenants: dict[str, Any], **spec: Any) -> None:
        self.kube.put_secret(
            self.ns,
            "store-keys",
            {"encryptKey": ENCRYPT_KEY, "verificationToken": VERIFICATION_TOKEN},
        )
        store = {
            "encryptKeyRef": {"name": "store-keys"},
            "verificationTokenRef": {"name": "store-keys"},
            "tenants": tenants,
        }
        self.larkapp(name, APP, appType="Store", store=store, **spec)

    def data(self, name: str) -> dict[str, str]:
        data = self.kube.secret(self.ns, f"{name}-lark-token") or {}
        self.secrets.update(v for k, v in data.items() if "access_token" in k)
        return data

    def current_tokens(self) -> dict[str, str]:
        """The emulator's current token per type: 'app' and each tenant key."""
        out = {}
        for t in self.emu.tokens(APP)["tokens"]:
            if t["current"] and t["valid"]:
                out[t["tenant_key"] or t["type"]] = t["token"]
        return out


@pytest.fixture
def store_env(
    kube: Kube, namespace: str, tmp_path: Path, operator_factory: Any
) -> Iterator[Callable[..., StoreEnv]]:
    made: list[StoreEnv] = []

    def make(
        tenants: list[str] = (),  # type: ignore[assignment]
        *,
        start: bool = True,
        ticket_interval: float = 3600,
        **emu_kw: Any,
    ) -> StoreEnv:
        port = free_port()
        emu = Emulator(
            tmp_path / f"emulator-{len(made)}.log",
            {},
            store_apps=[f"{APP}:{SECRET}:{ENCRYPT_KEY}:{VERIFICATION_TOKEN}"],
            tenants=[f"{APP}:{t}" for t in tenants],
            event_url=f"http://127.0.0.1:{port}/lark/events",
            ticket_interval=ticket_interval,
            **emu_kw,
        ).start()
        env = StoreEnv(kube, namespace, emu, operator_factory)
        env.events_port = port
        env.secrets.update({SECRET, ENCRYPT_KEY, VERIFICATION_TOKEN})
        env.app_secret("lark-secret", SECRET)
        if start:
            env.start_operator()
        made.append(env)
        return env

    yield make
    for env in made:
        env.emu.stop()
        env.assert_no_leaks()
