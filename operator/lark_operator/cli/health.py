"""`health-check` and `validate-env`: the operator's dependency probes and environment
checks, from a shell (the runbook's health_check.py and validate_env.py).

Where URLs come from: environment.py (DATABASE_URL, ..., or POSTGRES_HOST, ... as the
runbooks' environment has them), or with --larkapp the Secrets a LarkApp names.

Exit status: 0 every probe run is healthy; 1 some probe is not; 2 nothing to probe (no
dependency configured, a dependency named by --database/--redis/--rabbitmq without a URL,
--larkapp cannot be resolved). Without a selection, or with --all, every configured
dependency is probed and the others are listed as not configured.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from lark_operator.cli.environment import (
    ENV_URLS,
    MANAGEMENT_ENV,
    PARTS,
    check_env,
    dependency_url,
    env_url,
)
from lark_operator.credentials import CredentialError

__all__ = ["ENV_URLS", "MANAGEMENT_ENV", "check_env", "health_check", "register", "validate_env"]
_FLAGS = {"database": "postgres", "redis": "redis", "rabbitmq": "rabbitmq"}

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    hc = sub.add_parser(
        "health-check",
        help="probe PostgreSQL, Redis and RabbitMQ like the operator does",
        description="Probe the dependencies named by the environment (or by a LarkApp) and "
        "diagnose them. Without a selection (or with --all) every configured dependency is "
        "probed and the others are listed as not configured.",
        epilog="URLs: "
        + "; ".join(
            f"{d}: {', '.join(v)} or {', '.join(PARTS[d].variables)}" for d, v in ENV_URLS.items()
        )
        + f"; management API: {', '.join(MANAGEMENT_ENV)}. Exit 0: every probe run healthy; "
        "1: some unhealthy; 2: nothing configured, or a selected dependency is not.",
    )
    hc.add_argument(
        "--all", action="store_true", help="every configured dependency; lists the others"
    )
    hc.add_argument("--database", action="store_true", help="PostgreSQL (must be configured)")
    hc.add_argument("--redis", action="store_true", help="Redis (must be configured)")
    hc.add_argument("--rabbitmq", action="store_true", help="RabbitMQ (must be configured)")
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
        help="check the LARK_* and dependency environment variables",
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

    # Named flags: each must be configured. --all or nothing: whatever is configured.
    selected = [] if args.all else [dep for flag, dep in _FLAGS.items() if getattr(args, flag)]

    async def run() -> tuple[list[Any], dict[str, str]]:
        if args.larkapp:
            targets, unconfigured = await _cluster_targets(args.larkapp, selected)
        else:
            targets, unconfigured = _env_targets(os.environ, selected, args)
        return list(await asyncio.gather(*(run_target(t) for t in targets))), unconfigured

    # aiormq logs every failed connect at ERROR; the result table already says it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        results, unconfigured = asyncio.run(run())
    except _UsageError as exc:
        print(f"health-check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    healthy = all(r.healthy for r in results)
    if args.output == "json":
        doc = {
            "healthy": healthy,
            "results": [r.to_dict() for r in results],
            "not_configured": [{"dependency": d, "how": how} for d, how in unconfigured.items()],
        }
        print(json.dumps(doc, indent=2))
    else:
        print_results(results, sys.stdout)
        for dep, how in unconfigured.items():
            print(f"{dep}: not configured ({how})")
    return EXIT_OK if healthy else EXIT_UNHEALTHY


def _env_targets(
    env: Mapping[str, str], selected: list[str], args: argparse.Namespace
) -> tuple[list[Any], dict[str, str]]:
    """A target per configured dependency (of `selected`, when given), and how to configure
    each of the others."""
    from lark_operator.probes.target import ProbeTarget

    targets, unconfigured = [], {}
    for dep in selected or list(ENV_URLS):
        source, url = dependency_url(env, dep)
        if url is None:
            unconfigured[dep] = f"set {source}"
            continue
        cfg, mgmt = None, None
        if dep == "rabbitmq":
            mgmt = env_url(env, MANAGEMENT_ENV)[1]
            cfg = _rabbitmq_cfg(args.queue, args.max_ready)
        targets.append(ProbeTarget(dep, url, cfg, mgmt, args.timeout))
    if selected and unconfigured:
        raise _UsageError("; ".join(f"no URL for {d}: {how}" for d, how in unconfigured.items()))
    if not targets:
        names = ", ".join(v[0] for v in ENV_URLS.values())
        raise _UsageError(f"nothing to check: set at least one of {names} (or POSTGRES_HOST, ...)")
    return targets, unconfigured


def _rabbitmq_cfg(queues: Iterable[str], max_ready: int) -> Any:
    from lark_operator.models import RabbitMQProbe

    watched = []
    for spec in queues:
        vhost, _, name = spec.rpartition("/") if "/" in spec else ("/", "", spec)
        watched.append({"name": name, "vhost": vhost or "/", "maxReady": max_ready})
    return RabbitMQProbe.model_validate({"urlSecretRef": {"name": "env"}, "queues": watched})


async def _cluster_targets(ref: str, selected: list[str]) -> tuple[list[Any], dict[str, str]]:
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
    configured = {t.dependency for t in targets}
    unconfigured = {
        d: f"LarkApp {ref} has no spec.probes.{d}"
        for d in selected or list(ENV_URLS)
        if d not in configured
    }
    if not targets or (selected and unconfigured):
        raise _UsageError(
            f"LarkApp {ref} configures no probe"
            + (f" of {', '.join(unconfigured)}" if selected else "")
        )
    return targets, unconfigured


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
