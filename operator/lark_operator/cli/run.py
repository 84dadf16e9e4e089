"""`lark-operator run`: the operator itself (kopf) against the current kubeconfig or the
in-cluster service account."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from lark_operator.operator_settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="Run the operator")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=None, help="Watch this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="Watch every namespace (the default when no --namespace)",
    )
    p.add_argument("--health-port", type=int, default=None, help="/health port [9091]")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="/metrics port [same as --health-port]"
    )
    p.add_argument("--log-format", choices=["json", "text"], default=None)
    p.add_argument("--log-level", default=None)
    p.add_argument(
        "--allowed-base-url",
        action="append",
        default=None,
        help="An Open Platform base URL a LarkApp may name in spec.domain (repeatable)",
    )
    p.add_argument(
        "--peering", default=None, help="kopf peering name for HA (two replicas: only one acts)"
    )
    p.add_argument("--priority", type=int, default=None, help="Peering priority")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings()
    if args.namespace:
        s.namespaces = list(args.namespace)
    if args.all_namespaces:
        s.namespaces, s.all_namespaces = [], True
    for field in ("health_port", "metrics_port", "log_format", "log_level", "peering", "priority"):
        value = getattr(args, field)
        if value is not None:
            setattr(s, field, value)
    if args.allowed_base_url:
        s.allowed_base_urls = list(args.allowed_base_url)
    return s


def run(args: argparse.Namespace) -> int:
    import kopf

    from lark_operator import runtime
    from lark_operator.logs import setup_logging

    settings = settings_from(args)
    setup_logging(settings.log_format, settings.log_level)
    runtime.install(settings)
    from lark_operator import handlers  # noqa: F401 - registers the kopf handlers

    asyncio.run(
        kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            priority=settings.priority,
        )
    )
    return 0
