"""What to probe: one dependency at one URL with one set of thresholds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lark_operator.models import Probes
from lark_operator.probes import dsn
from lark_operator.probes.postgres import probe_postgres
from lark_operator.probes.rabbitmq import probe_rabbitmq
from lark_operator.probes.redis import probe_redis
from lark_operator.probes.result import PROBE_ERROR, ProbeResult, failure


@dataclass(frozen=True)
class ProbeTarget:
    dependency: str  # "postgres" | "redis" | "rabbitmq"
    url: str = field(repr=False)  # holds a password: never in repr or logs
    cfg: Any = None  # models.PostgresProbe | RedisProbe | RabbitMQProbe | None
    management_url: str | None = field(default=None, repr=False)
    timeout: float = 5.0

    @property
    def redacted_url(self) -> str:
        return dsn.redact(self.url)

    def __repr__(self) -> str:
        return f"ProbeTarget({self.dependency}, {self.redacted_url}, timeout={self.timeout:g})"


async def run_target(target: ProbeTarget, state: dict[str, Any] | None = None) -> ProbeResult:
    """Run the probe that fits the target's dependency."""
    if target.dependency == "postgres":
        return await probe_postgres(target.url, target.timeout, target.cfg, state)
    if target.dependency == "redis":
        return await probe_redis(target.url, target.timeout, target.cfg)
    if target.dependency == "rabbitmq":
        return await probe_rabbitmq(target.url, target.timeout, target.cfg, target.management_url)
    return failure(target.dependency, PROBE_ERROR, f"no probe for {target.dependency!r}")


# (Secret name, key, the spec field naming it) -> the value; raises the caller's own error.
ReadValue = Callable[[str, str, str], Awaitable[str]]


async def resolve(dependency: str, probes: Probes, read: ReadValue) -> ProbeTarget:
    """A LarkApp's probe target for one configured dependency, its URLs read through
    `read` — the one resolution the operator (reconcile/probelink.py) and the CLI
    (`health-check --larkapp`, cli/cluster.py) share."""
    cfg = getattr(probes, dependency)
    if dependency == "postgres":
        ref, field = cfg.dsn_secret_ref, "dsnSecretRef"
    else:
        ref, field = cfg.url_secret_ref, "urlSecretRef"
    url = await read(ref.name, ref.key, f"spec.probes.{dependency}.{field}")
    mgmt = None
    if dependency == "rabbitmq" and cfg.management_url_secret_ref is not None:
        m = cfg.management_url_secret_ref
        mgmt = await read(m.name, m.key, "spec.probes.rabbitmq.managementUrlSecretRef")
    return ProbeTarget(dependency, url, cfg, mgmt, probes.timeout_seconds)
