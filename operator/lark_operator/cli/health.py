"""`health-check` and `validate-env`: the operator's dependency probes and environment
checks, from a shell (the runbook's health_check.py and validate_env.py).

Where URLs come from (the first variable that is set wins):
  PostgreSQL  DATABASE_URL, LARK_DATABASE_URL, POSTGRES_DSN
  Redis       REDIS_URL, LARK_REDIS_URL
  RabbitMQ    RABBITMQ_URL, LARK_RABBITMQ_URL;
              management API: RABBITMQ_MANAGEMENT_URL, LARK_RABBITMQ_MANAGEMENT_URL

Exit status: 0 every selected probe is healthy; 1 some probe is not; 2 nothing to probe
(a selected dependency has no URL, --larkapp cannot be resolved).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from lark_operator.credentials import CredentialError

ENV_URLS: dict[str, tuple[str, ...]] = {
    "postgres": ("DATABASE_URL", "LARK_DATABASE_URL", "POSTGRES_DSN"),
    "redis": ("REDIS_URL", "LARK_REDIS_URL"),
    "rabbitmq": ("RABBITMQ_URL", "LARK_RABBITMQ_URL"),
}
MANAGEMENT_ENV = ("RABBITMQ_MANAGEMENT_URL", "LARK_RABBITMQ_MANAGEMENT_URL")
_FLAGS = {"database": "postgres", "redis": "redis", "rabbitmq": "rabbitmq"}
_APP_ID = re.compile(r"^cli_[A-Za-z0-9]+$")

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    hc = sub.add_parser(
        "health-check",
        help="probe PostgreSQL, Redis and RabbitMQ like the operator does",
        description="Probe the dependencies named by the environment (or by a LarkApp) and "
        "diagnose them. Without a selection, every dependency with a URL is probed.",
        epilog="URLs: "
        + "; ".join(f"{d}: {', '.join(v)}" for d, v in ENV_URLS.items())
        + f"; management API: {', '.join(MANAGEMENT_ENV)}. Exit 0 only when all are healthy.",
    )
    hc.add_argument("--all", action="store_true", help="all three; each must be configured")
    hc.add_argument("--database", action="store_true", help="PostgreSQL")
    hc.add_argument("--redis", action="store_true", help="Redis")
    hc.add_argument("--rabbitmq", action="store_true", help="RabbitMQ")
    hc.add_argument("-o", "--output", choices=("text", "json"), default="text")
    hc.add_argument("--timeout", type=float, default=5.0, help="seconds per probe [5]")
    hc.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="[VHOST/]NAME",
        help="RabbitMQ queue to watch for consumers and backlog (repeatable)",
    )
    hc.add_argument("--max-ready", type=int, default=1000, help="backlog threshold [1000]")
    hc.add_argument(
        "--larkapp",
        metavar="NAMESPACE/NAME",
        help="probe what this LarkApp names, reading its Secrets through the cluster",
    )
    hc.set_defaults(func=health_check)

    ve = sub.add_parser(
        "validate-env",
        help="check the LARK_* and dependency URL environment variables",
        description="Name every variable that is missing or malformed (secrets are never "
        "printed). Exit 0 only when the required ones are fine and none is malformed.",
    )
    ve.add_argument("-o", "--output", choices=("text", "json"), default="text")
    ve.set_defaults(func=validate_env)


# --- health-check ---------------------------------------------------------------------------
class _UsageError(Exception):
    pass


def health_check(args: argparse.Namespace) -> int:
    from lark_operator.probes.target import run_target

    selected = [dep for flag, dep in _FLAGS.items() if getattr(args, flag)]
    if args.all:
        selected = list(ENV_URLS)

    async def run() -> list[Any]:
        if args.larkapp:
            targets = await _cluster_targets(args.larkapp, selected)
        else:
            targets = _env_targets(os.environ, selected, args)
        return list(await asyncio.gather(*(run_target(t) for t in targets)))

    # aiormq logs every failed connect at ERROR; the result table already says it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        results = asyncio.run(run())
    except _UsageError as exc:
        print(f"health-check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        healthy = all(r.healthy for r in results)
        doc = {"healthy": healthy, "results": [r.to_dict() for r in results]}
        print(json.dumps(doc, indent=2))
    else:
        print_results(results, sys.stdout)
    return EXIT_OK if all(r.healthy for r in results) else EXIT_UNHEALTHY


def env_url(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str | None]:
    """(variable, value) of the first variable set; (first name, None) when none is."""
    for name in names:
        if env.get(name):
            return name, env[name]
    return names[0], None


def _env_targets(env: Mapping[str, str], selected: list[str], args: argparse.Namespace) -> list:
    from lark_operator.probes.target import ProbeTarget

    explicit = bool(selected)
    targets, missing = [], []
    for dep in selected or list(ENV_URLS):
        _, url = env_url(env, ENV_URLS[dep])
        if url is None:
            missing.append(dep)
            continue
        cfg, mgmt = None, None
        if dep == "rabbitmq":
            mgmt = env_url(env, MANAGEMENT_ENV)[1]
            cfg = _rabbitmq_cfg(args.queue, args.max_ready)
        targets.append(ProbeTarget(dep, url, cfg, mgmt, args.timeout))
    if explicit and missing:
        raise _UsageError(
            "; ".join(f"no URL for {d}: set {' or '.join(ENV_URLS[d])}" for d in missing)
        )
    if not targets:
        names = ", ".join(v[0] for v in ENV_URLS.values())
        raise _UsageError(f"nothing to check: set at least one of {names}")
    return targets


def _rabbitmq_cfg(queues: Iterable[str], max_ready: int) -> Any:
    from lark_operator.models import RabbitMQProbe

    watched = []
    for spec in queues:
        vhost, _, name = spec.rpartition("/") if "/" in spec else ("/", "", spec)
        watched.append({"name": name, "vhost": vhost or "/", "maxReady": max_ready})
    return RabbitMQProbe.model_validate({"urlSecretRef": {"name": "env"}, "queues": watched})


async def _cluster_targets(ref: str, selected: list[str]) -> list:
    from lark_operator.probes.target import ProbeTarget

    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise _UsageError(f"--larkapp wants NAMESPACE/NAME, got {ref!r}")
    try:  # written separately (it needs the cluster client): imported only when asked for
        module = importlib.import_module("lark_operator.cli.cluster")
    except ImportError:
        module = None
    resolve = getattr(module, "resolve_probe_targets", None)
    if resolve is None:
        raise _UsageError("--larkapp is not available in this build")
    try:
        found = resolve(namespace, name, dependencies=selected or None)
        if inspect.isawaitable(found):
            found = await found
    except CredentialError as exc:  # a DSN/URL Secret missing, empty or not text
        raise _UsageError(f"cannot resolve {ref}: {exc.reason}: {exc}") from None
    except Exception as exc:
        # The resolver's own words; it is written not to include Secret values.
        raise _UsageError(f"cannot resolve {ref}: {exc}") from None
    targets = [t if isinstance(t, ProbeTarget) else ProbeTarget(**dict(t)) for t in found]
    if selected:
        targets = [t for t in targets if t.dependency in selected]
    if not targets:
        raise _UsageError(f"LarkApp {ref} configures no probe" + (" of that kind" * bool(selected)))
    return targets


def print_results(results: Sequence[Any], out: TextIO) -> None:
    rows = [
        (
            r.dependency,
            "yes" if r.healthy else "NO",
            r.reason,
            "-" if r.latency_ms is None else f"{r.latency_ms:.1f}ms",
            r.details.get("endpoint", "-"),
            r.message,
        )
        for r in results
    ]
    header = ("DEPENDENCY", "HEALTHY", "REASON", "LATENCY", "ENDPOINT", "MESSAGE")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    for row, result in zip([header, *rows], [None, *results], strict=True):
        cells = [c.ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)
        if result is not None and not result.healthy:
            print(" " * (widths[0] + 2) + f"hint: {result.hint}", file=out)


# --- validate-env ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvCheck:
    variable: str
    status: str  # OK | MISSING | MALFORMED | UNSET (optional and not set)
    detail: str

    @property
    def failed(self) -> bool:
        return self.status in ("MISSING", "MALFORMED")


def check_env(env: Mapping[str, str]) -> list[EnvCheck]:
    """Every variable the operator's CLI reads, judged; values of secrets are never shown."""
    return [
        _check_app_id(env.get("LARK_APP_ID")),
        _check_secret(env.get("LARK_APP_SECRET")),
        _check_domain(env.get("LARK_DOMAIN")),
        *_check_urls(env),
    ]


def _check_app_id(value: str | None) -> EnvCheck:
    name = "LARK_APP_ID"
    if not value:
        return EnvCheck(name, "MISSING", "required: the app's ID, e.g. cli_a1b2c3d4e5f6")
    if value != value.strip():
        return EnvCheck(name, "MALFORMED", "has leading or trailing whitespace")
    if not _APP_ID.match(value) or len(value) > 64:
        return EnvCheck(
            name, "MALFORMED", f"{value[:70]!r} is not 'cli_' followed by letters/digits (<= 64)"
        )
    return EnvCheck(name, "OK", value)


def _check_secret(value: str | None) -> EnvCheck:
    name = "LARK_APP_SECRET"
    if value is None or value == "":
        return EnvCheck(name, "MISSING", "required: the App Secret from the developer console")
    if not value.strip():
        return EnvCheck(name, "MALFORMED", "is only whitespace")
    if value != value.strip():
        return EnvCheck(name, "MALFORMED", "has leading or trailing whitespace (copy-paste?)")
    return EnvCheck(name, "OK", "set (value not shown)")


def _check_domain(value: str | None) -> EnvCheck:
    from lark_operator.probes import dsn
    from lark_operator.vocabulary.domains import BASE_URLS

    name = "LARK_DOMAIN"
    if not value:
        return EnvCheck(name, "UNSET", f"optional; defaults to feishu ({BASE_URLS['feishu']})")
    if value in BASE_URLS:
        return EnvCheck(name, "OK", f"{value} ({BASE_URLS[value]})")
    try:
        dsn.parse(value, dsn.SCHEMES["management"])  # http/https with a host
    except dsn.InvalidURL as exc:
        return EnvCheck(name, "MALFORMED", f"not feishu, lark or an http(s) URL: {exc}")
    return EnvCheck(name, "OK", dsn.redact(value))


def _check_urls(env: Mapping[str, str]) -> list[EnvCheck]:
    from lark_operator.probes import dsn

    groups = [(dep, names, dsn.SCHEMES[dep]) for dep, names in ENV_URLS.items()]
    groups.append(("rabbitmq management", MANAGEMENT_ENV, dsn.SCHEMES["management"]))
    checks = []
    for dep, names, schemes in groups:
        present = [n for n in names if env.get(n)]
        if not present:
            checks.append(EnvCheck(names[0], "UNSET", f"optional: the {dep} URL"))
            continue
        for i, var in enumerate(present):
            used = "" if i == 0 else f" (ignored: {present[0]} wins)"
            try:
                dsn.parse(env[var], schemes)
            except dsn.InvalidURL as exc:
                checks.append(EnvCheck(var, "MALFORMED", f"{exc}{used}"))
            else:
                checks.append(EnvCheck(var, "OK", dsn.redact(env[var]) + used))
    return checks


def validate_env(args: argparse.Namespace) -> int:
    checks = check_env(os.environ)
    if args.output == "json":
        doc = {
            "ok": not any(c.failed for c in checks),
            "variables": [c.__dict__ for c in checks],
        }
        print(json.dumps(doc, indent=2))
    else:
        width = max(len(c.variable) for c in checks)
        for c in checks:
            print(f"{c.variable.ljust(width)}  {c.status.ljust(9)}  {c.detail}")
    return EXIT_UNHEALTHY if any(c.failed for c in checks) else EXIT_OK
