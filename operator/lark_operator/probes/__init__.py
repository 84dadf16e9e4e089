"""Dependency probes (PostgreSQL, Redis, RabbitMQ), their diagnosis and the shared scheduler.

Every probe is async, bounded by its own timeout, and never raises: it returns a
`ProbeResult` whose `reason` comes from the fixed vocabulary in `result.PRECEDENCE`.
"""

from lark_operator.probes.postgres import probe_postgres
from lark_operator.probes.rabbitmq import probe_rabbitmq
from lark_operator.probes.redis import probe_redis
from lark_operator.probes.result import DEPENDENCIES, Finding, ProbeResult

__all__ = [
    "DEPENDENCIES",
    "Finding",
    "ProbeResult",
    "probe_postgres",
    "probe_rabbitmq",
    "probe_redis",
]
