"""What the probe tests share: URLs whose password must never show, and faked driver calls."""

from __future__ import annotations

from typing import Any

from lark_operator.probes import result as r

SECRET = "hunter2-secret"
PG_URL = f"postgresql://app:{SECRET}@db.internal:5432/app"
REDIS_URL = f"redis://:{SECRET}@cache.internal:6379/0"
AMQP_URL = f"amqp://app:{SECRET}@mq.internal:5672/"


def assert_no_secret(res: r.ProbeResult) -> None:
    text = res.message + repr(res.details) + repr(res.to_dict())
    assert SECRET not in text


def raising(exc: BaseException) -> Any:
    async def fake(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fake


def reasons(findings: list) -> list[str]:
    return [f.reason for f in findings]
