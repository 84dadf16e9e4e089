"""`lark-operator run`: the operator's flags. Settings are loaded from them and the
LARK_OPERATOR_* environment (a bad value: exit 2 naming it), then app/main.py runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lark_operator.settings import Settings, SettingsError, load
from lark_operator.vocabulary.timefmt import parse_duration

ENV = "LARK_OPERATOR_"


def _seconds(text: str) -> float:
    """'15' or a Go duration ('15s', '1m'), as controller-runtime's flags take them."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="Run the operator")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        default=None,
        help=f"Watch this namespace (repeatable) [${ENV}NAMESPACES, comma-separated]",
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
    p.add_argument(
        "--bind-address",
        default=None,
        help="Address /health and /metrics listen on [0.0.0.0]",
    )
    p.add_argument("--log-format", choices=["json", "text"], default=None)
    p.add_argument("--log-level", default=None)
    p.add_argument(
        "--allowed-base-url",
        dest="allowed_base_urls",
        action="append",
        default=None,
        help="An Open Platform base URL a LarkApp may name in spec.domain (repeatable) "
        f"[${ENV}ALLOWED_BASE_URLS, comma-separated]",
    )
    p.add_argument(
        "--events-port",
        type=int,
        default=None,
        help="Port of POST /lark/events, the store apps' event callbacks; 0: not served [9092]",
    )
    p.add_argument(
        "--cluster-resource-namespace",
        default=None,
        help="Namespace ClusterLarkApps read their App Secret from and store apps' app_tickets "
        f"are kept in [${ENV}CLUSTER_RESOURCE_NAMESPACE; the operator's own namespace]",
    )
    ha = p.add_argument_group("leader election (HA with a coordination.k8s.io Lease)")
    ha.add_argument(
        "--leader-elect",
        action="store_true",
        default=None,
        help="Act only while holding the leader Lease; wait as a standby otherwise",
    )
    ha.add_argument(
        "--leader-elect-namespace",
        default=None,
        help="Namespace of the Lease [the pod's namespace, else 'default']",
    )
    ha.add_argument("--leader-elect-name", default=None, help="Name of the Lease [lark-operator]")
    ha.add_argument(
        "--lease-duration",
        type=_seconds,
        default=None,
        help="How long a standby waits on an unrenewed Lease before taking it, s [15]",
    )
    ha.add_argument(
        "--renew-deadline",
        type=_seconds,
        default=None,
        help="How long the leader keeps acting without a successful renewal, s [10]",
    )
    ha.add_argument(
        "--retry-period", type=_seconds, default=None, help="Between Lease attempts, s [2]"
    )
    p.set_defaults(func=run)


_FIELDS = (
    "namespaces",
    "health_port",
    "metrics_port",
    "bind_address",
    "log_format",
    "log_level",
    "allowed_base_urls",
    "events_port",
    "cluster_resource_namespace",
    "leader_elect",
    "leader_elect_namespace",
    "leader_elect_name",
    "lease_duration",
    "renew_deadline",
    "retry_period",
)


def settings_from(args: argparse.Namespace) -> Settings:
    """The flags given (and the environment): SettingsError names a bad one."""
    overrides = {f: getattr(args, f, None) for f in _FIELDS}
    if args.all_namespaces:
        overrides["namespaces"] = []
    return load(**overrides)


def run(args: argparse.Namespace) -> int:
    from lark_operator.logs import setup_logging

    try:
        settings = settings_from(args)
    except SettingsError as e:
        print(f"lark-operator run: {e}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    from lark_operator.app import main

    return main.run(settings)
