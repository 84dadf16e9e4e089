"""RabbitMQ probe: a real AMQP 0-9-1 login with the URL's credentials (so a bad password
reads AuthFailed, not Unreachable), then, when a management URL is given, alarms and the
watched queues from the management API. Without one, watched queues in the URL's vhost
are read with a passive queue.declare, which reports ready messages and consumers too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import aiormq
import yarl
from aiormq import exceptions as amqp_exc

from lark_operator import models
from lark_operator.probes import dsn
from lark_operator.probes.result import (
    ALARM_RAISED,
    AUTH_FAILED,
    NO_CONSUMERS,
    PROBE_ERROR,
    QUEUE_BACKLOG,
    TIMEOUT,
    UNREACHABLE,
    Finding,
    ProbeResult,
    diagnose,
)
from lark_operator.probes.runner import ProbeFailed, Progress, run_probe

CONNECTION_NAME = "lark-operator-probe"
_NOT_ALLOWED = 530  # AMQP reply code: vhost missing or not permitted for this user


def diagnose_queue(
    watch: models.QueueWatch, ready: int | None, consumers: int | None
) -> list[Finding]:
    """Pure: findings for one watched queue (ready None = the queue does not exist)."""
    label = f"queue {watch.name!r} in vhost {watch.vhost!r}"
    if ready is None:
        return [Finding(NO_CONSUMERS, f"{label} does not exist (no consumer declared it)")]
    findings = []
    if watch.require_consumers and ready > 0 and not consumers:
        findings.append(
            Finding(NO_CONSUMERS, f"{label} has {ready} ready messages and no consumer")
        )
    if ready > watch.max_ready:
        findings.append(
            Finding(
                QUEUE_BACKLOG,
                f"{label} has {ready} ready messages (maxReady {watch.max_ready}, "
                f"{consumers or 0} consumers)",
            )
        )
    return findings


def diagnose_nodes(
    nodes: Iterable[Mapping[str, Any]], alarms: Iterable[Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Pure: a finding per memory or disk alarm (publishers are blocked while one is on).

    `alarms` is the list from /api/health/checks/alarms, which is current; without it the
    nodes' mem_alarm/disk_free_alarm flags are used, which lag by a statistics interval.
    """
    by_name = {str(n.get("name")): n for n in nodes}
    if alarms is None:
        raised = [
            (name, kind)
            for name, n in by_name.items()
            for kind, flag in (("memory", "mem_alarm"), ("disk", "disk_free_alarm"))
            if n.get(flag)
        ]
    else:
        raised = [
            (str(a.get("node", "?")), "disk" if "disk" in str(a.get("resource")) else "memory")
            for a in alarms
        ]
    findings = []
    for name, kind in raised:
        node = by_name.get(name, {})
        if kind == "memory":
            usage = f"mem_used {node.get('mem_used', '?')} of limit {node.get('mem_limit', '?')}"
        else:
            usage = (
                f"disk_free {node.get('disk_free', '?')}, limit {node.get('disk_free_limit', '?')}"
            )
        findings.append(
            Finding(ALARM_RAISED, f"{kind} alarm on {name} ({usage} bytes): publishers are blocked")
        )
    return findings


async def probe_rabbitmq(
    url: str,
    timeout: float,
    cfg: models.RabbitMQProbe | None = None,
    management_url: str | None = None,
) -> ProbeResult:
    watched = tuple(cfg.queues) if cfg is not None else ()
    where = {"amqp": "the broker", "management": "the management API"}

    async def body(progress: Progress) -> ProbeResult:
        amqp = dsn.parse(url, dsn.SCHEMES["rabbitmq"])
        mgmt = dsn.parse(management_url, dsn.SCHEMES["management"]) if management_url else None
        default_port = 5671 if amqp.scheme == "amqps" else 5672
        where["amqp"] = f"{amqp.host}:{amqp.port or default_port}"
        progress.details["endpoint"] = where["amqp"]
        findings: list[Finding] = []
        details: dict[str, Any] = {"endpoint": where["amqp"]}

        conn = await aiormq.connect(url, client_properties={"connection_name": CONNECTION_NAME})
        try:
            props = conn.server_properties or {}
            details["product"] = props.get("product")
            details["rabbitmqVersion"] = props.get("version")
            progress.details.update(details)
            progress.stage = "opening an AMQP channel"
            started = time.perf_counter()
            await conn.channel()
            latency_ms = (time.perf_counter() - started) * 1000
            if watched and mgmt is None:
                progress.stage = "declaring watched queues passively"
                for watch in watched:
                    findings += await _passive_queue(conn, watch, details)
        finally:
            # Bounded: after a timeout this runs past the probe's deadline, and a broker
            # that hangs would never answer Close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)

        if mgmt is not None and management_url:
            port = mgmt.port or (443 if mgmt.scheme == "https" else 80)
            where["management"] = f"management API at {mgmt.host}:{port}"
            progress.stage = f"querying the {where['management']}"
            # The management URL's own credentials, else the AMQP login's, else guest.
            login = next((u for u in (mgmt, amqp) if u.username), None)
            user, password = (login.username, login.password) if login else ("guest", "guest")
            auth = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            findings += await _management(management_url, f"Basic {auth}", watched, details)

        version = details.get("rabbitmqVersion") or "?"
        return diagnose(
            "rabbitmq",
            findings,
            latency_ms=latency_ms,
            details=details,
            healthy_message=f"RabbitMQ {version} accepted the login; channel opened in "
            f"{latency_ms:.1f}ms",
        )

    def classify(exc: BaseException) -> Finding | None:
        broker = where["amqp"]
        if isinstance(exc, amqp_exc.ProbableAuthenticationError | amqp_exc.AuthenticationError):
            return Finding(AUTH_FAILED, f"{broker} refused the login: {_amqp_text(exc)}")
        if isinstance(exc, amqp_exc.ConnectionClosed) and exc.args[:1] == (_NOT_ALLOWED,):
            return Finding(AUTH_FAILED, f"{broker} refused the vhost: {_amqp_text(exc)}")
        if isinstance(exc, amqp_exc.IncompatibleProtocolError):
            return Finding(PROBE_ERROR, f"{broker} does not speak AMQP 0-9-1")
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return Finding(TIMEOUT, f"{where['management']} did not answer in time")
        if isinstance(exc, aiohttp.ClientConnectionError):
            return Finding(UNREACHABLE, f"cannot connect to {where['management']}: {exc}")
        if isinstance(exc, aiohttp.ClientError):
            return Finding(PROBE_ERROR, f"{where['management']} failed: {type(exc).__name__}")
        if isinstance(exc, ssl.SSLError):
            return Finding(PROBE_ERROR, f"TLS with {broker} failed: {type(exc).__name__}")
        if isinstance(exc, amqp_exc.ConnectionClosed):
            return Finding(UNREACHABLE, f"{broker} closed the connection: {_amqp_text(exc)}")
        if isinstance(exc, amqp_exc.AMQPConnectionError):  # aiormq wraps socket errors
            return Finding(UNREACHABLE, f"cannot connect to {broker}: {_amqp_text(exc)}")
        if isinstance(exc, OSError):
            return Finding(UNREACHABLE, f"cannot connect to {broker}: {exc.strerror or exc}")
        return None

    return await run_probe("rabbitmq", timeout, (url, management_url), body, classify)


async def _passive_queue(
    conn: aiormq.abc.AbstractConnection, watch: models.QueueWatch, details: dict[str, Any]
) -> list[Finding]:
    key = f"queue.{watch.vhost}/{watch.name}"
    if watch.vhost != conn.vhost:  # type: ignore[attr-defined]
        details[key] = "not checked: another vhost needs managementUrl"
        return []
    channel = await conn.channel()  # a failed passive declare closes its channel
    try:
        ok = await channel.queue_declare(watch.name, passive=True)
    except amqp_exc.ChannelNotFoundEntity:
        details[key] = "missing"
        return diagnose_queue(watch, None, None)
    finally:
        if not channel.is_closed:
            await channel.close()
    ready, consumers = int(ok.message_count or 0), int(ok.consumer_count or 0)
    details[key] = f"ready={ready} consumers={consumers}"
    return diagnose_queue(watch, ready, consumers)


async def _management(
    management_url: str,
    authorization: str,
    watched: tuple[models.QueueWatch, ...],
    details: dict[str, Any],
) -> list[Finding]:
    parts = urlsplit(management_url)
    hostport = parts.netloc.rpartition("@")[2]  # credentials go in the auth header instead
    base = urlunsplit((parts.scheme, hostport, parts.path.rstrip("/"), "", ""))
    headers = {"Authorization": authorization}
    async with aiohttp.ClientSession(headers=headers) as session:
        overview = await _get_json(session, base, "/api/overview") or {}
        details["rabbitmqVersion"] = overview.get("rabbitmq_version") or details.get(
            "rabbitmqVersion"
        )
        details["erlangVersion"] = overview.get("erlang_version")
        details["clusterName"] = overview.get("cluster_name")
        nodes = await _get_json(session, base, "/api/nodes") or []
        details["nodes"] = len(nodes)
        # 503 is this endpoint's "alarms in effect"; 404 on brokers older than 3.8.10.
        health = await _get_json(session, base, "/api/health/checks/alarms", missing_ok=True)
        findings = diagnose_nodes(nodes, None if health is None else health.get("alarms", []))
        for watch in watched:
            path = f"/api/queues/{quote(watch.vhost, safe='')}/{quote(watch.name, safe='')}"
            queue = await _get_json(session, base, path, missing_ok=True)
            key = f"queue.{watch.vhost}/{watch.name}"
            if queue is None:
                details[key] = "missing"
                findings += diagnose_queue(watch, None, None)
                continue
            consumers = int(queue.get("consumers") or 0)
            if queue.get("messages_ready") is None:  # a new queue before its first stats
                details[key] = f"ready=unknown consumers={consumers}"
                continue
            ready = int(queue["messages_ready"])
            details[key] = f"ready={ready} consumers={consumers}"
            findings += diagnose_queue(watch, ready, consumers)
    return findings


async def _get_json(
    session: aiohttp.ClientSession, base: str, path: str, missing_ok: bool = False
) -> Any:
    async with session.get(yarl.URL(base + path, encoded=True)) as resp:
        if resp.status in (401, 403):
            raise ProbeFailed(
                AUTH_FAILED, f"the management API rejected the credentials (HTTP {resp.status})"
            )
        if resp.status == 404 and missing_ok:
            return None
        if resp.status == 503 and path.startswith("/api/health/"):
            return await resp.json()  # a failed health check still answers its details
        if resp.status != 200:
            raise ProbeFailed(
                PROBE_ERROR, f"the management API answered HTTP {resp.status} for {path}"
            )
        return await resp.json()


def _amqp_text(exc: BaseException) -> str:
    """The broker's reply text (e.g. 'ACCESS_REFUSED - Login was refused ...')."""
    texts = [a for a in exc.args if isinstance(a, str)]
    return texts[-1] if texts else type(exc).__name__
