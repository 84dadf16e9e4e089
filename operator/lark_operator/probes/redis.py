"""Redis probe: PING latency, then INFO for memory, evictions and clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lark_operator import models
from lark_operator.probes import dsn
from lark_operator.probes.result import (
    AUTH_FAILED,
    MEMORY_PRESSURE,
    PROBE_ERROR,
    TIMEOUT,
    UNREACHABLE,
    Finding,
    ProbeResult,
    diagnose,
)
from lark_operator.probes.runner import Progress, run_probe

_DEFAULT_MAX_MEMORY_PERCENT: int = models.RedisProbe.model_fields["max_memory_percent"].default
# Error replies that mean "these credentials are wrong", whatever exception class the
# client library chose for them.
_AUTH_MARKERS = (
    "WRONGPASS",
    "NOAUTH",
    "invalid password",
    "invalid username-password",
    "without any password configured",
    "Authentication required",
)


def diagnose_info(info: Mapping[str, Any], max_memory_percent: int) -> tuple[list[Finding], dict]:
    """Pure: findings and details from one INFO reply."""
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    details: dict[str, Any] = {
        "redisVersion": info.get("redis_version"),
        "role": info.get("role"),
        "usedMemory": used,
        "maxMemory": limit,
        "maxMemoryPolicy": info.get("maxmemory_policy"),
        "evictedKeys": info.get("evicted_keys"),
        "connectedClients": info.get("connected_clients"),
        "rejectedConnections": info.get("rejected_connections"),
    }
    findings: list[Finding] = []
    if limit > 0:  # 0 means no limit: nothing to be near
        percent = 100.0 * used / limit
        details["usedMemoryPercent"] = f"{percent:.0f}"
        if percent >= max_memory_percent or used >= limit:
            findings.append(
                Finding(
                    MEMORY_PRESSURE,
                    f"used_memory {used} of maxmemory {limit} bytes ({percent:.0f}% >= "
                    f"{max_memory_percent}%, policy {info.get('maxmemory_policy')}, "
                    f"{info.get('evicted_keys', 0)} keys evicted)",
                )
            )
    return findings, details


async def probe_redis(
    url: str, timeout: float, cfg: models.RedisProbe | None = None
) -> ProbeResult:
    max_percent = cfg.max_memory_percent if cfg is not None else _DEFAULT_MAX_MEMORY_PERCENT
    endpoint = ""

    async def body(progress: Progress) -> ProbeResult:
        nonlocal endpoint
        parsed = dsn.parse(url, dsn.SCHEMES["redis"])
        endpoint = f"{parsed.host}:{parsed.port or 6379}"
        progress.details["endpoint"] = endpoint
        client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one attempt: the scheduler decides when to retry
            single_connection_client=True,
        )
        try:
            started = time.perf_counter()
            await client.ping()
            latency_ms = (time.perf_counter() - started) * 1000
            progress.stage = "reading INFO"
            info = await client.info()
        finally:
            with contextlib.suppress(Exception):  # bounded: may run after the deadline
                await asyncio.wait_for(client.aclose(), 1.0)
        findings, details = diagnose_info(info, max_percent)
        return diagnose(
            "redis",
            findings,
            latency_ms=latency_ms,
            details={"endpoint": endpoint, **details},
            healthy_message=f"Redis {info.get('redis_version')} ({info.get('role')}) answered "
            f"PING in {latency_ms:.1f}ms",
        )

    def classify(exc: BaseException) -> Finding | None:
        where = endpoint or "the server"
        text = str(exc)
        if isinstance(exc, rexc.AuthenticationError) or any(m in text for m in _AUTH_MARKERS):
            return Finding(AUTH_FAILED, f"{where} rejected the credentials: {text}")
        if isinstance(exc, rexc.OutOfMemoryError) or text.startswith("OOM"):
            return Finding(MEMORY_PRESSURE, f"{where} is out of memory: {text}")
        if isinstance(exc, rexc.TimeoutError):
            return Finding(TIMEOUT, f"{where} did not answer within {timeout:g}s")
        if isinstance(exc, rexc.BusyLoadingError):
            return Finding(UNREACHABLE, f"{where} is loading its dataset into memory")
        if isinstance(exc, rexc.ConnectionError | OSError):
            return Finding(UNREACHABLE, f"cannot connect to {where}: {text}")
        if isinstance(exc, rexc.ResponseError):
            return Finding(PROBE_ERROR, f"{where} answered an error: {text}")
        return None

    return await run_probe("redis", timeout, (url,), body, classify)
