"""What to probe: one dependency at one URL with one set of thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
