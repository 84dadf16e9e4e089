"""`kubectl-lark`: the kubectl plugin (`kubectl lark status|refresh|validate|describe`).

kubectl finds `kubectl-lark` on PATH and runs it with the arguments after `lark`; flags
placed before `lark` are not passed on, so every flag is accepted after the sub-command
(and before it, for direct `kubectl-lark` use). The kubeconfig, context and namespace are
chosen as kubectl chooses them: --kubeconfig, else $KUBECONFIG, else ~/.kube/config;
--context, else the current context; -n, else the context's namespace, else "default".

Exit status: 0 success; 1 the check failed (not Ready with --fail-if-not-ready, invalid
credentials, a refresh that failed or was not handled in time); 2 usage or cluster errors
(no kubeconfig, LarkApp or Secret not found, apiserver unreachable or forbidden, a
spec.domain that is not allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from lark_operator import __version__, credentials
from lark_operator.cli import cluster
from lark_operator.cli.kubectl_plugin import commands
from lark_operator.kube import KubeClient, KubeError

Command = Callable[[argparse.Namespace, KubeClient, str], Awaitable[int]]


def _connection_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # SUPPRESS at the top level lets a value given there survive a sub-parser that did
    # not see the flag.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--kubeconfig", default=default, help="path to the kubeconfig file")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", default=default, help="namespace [the context's namespace]"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl lark",
        description="Inspect and operate LarkApps (Feishu / Lark Open Platform apps).",
        epilog="Exit status: 0 ok; 1 check failed; 2 usage or cluster error.",
    )
    parser.add_argument("--version", action="version", version=f"kubectl-lark {__version__}")
    _connection_flags(parser, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, func: Command) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text + ".")
        _connection_flags(p, suppress=True)
        p.set_defaults(func=func)
        return p

    st = add(
        "status",
        "Table of LarkApps (readiness, token countdown, probes) and the ClusterLarkApps they use",
        commands.status,
    )
    st.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="LarkApps in every namespace, and every ClusterLarkApp",
    )
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")
    st.add_argument(
        "--fail-if-not-ready",
        action="store_true",
        help="exit 1 when any listed LarkApp is not Ready (for scripts and CI)",
    )

    rf = add("refresh", "Ask the operator to refresh a LarkApp's token now", commands.refresh)
    rf.add_argument("name")
    rf.add_argument(
        "--wait", action="store_true", help="wait until the operator handled it; print the token"
    )
    rf.add_argument("--timeout", type=float, default=60.0, help="seconds to wait [60]")

    va = add(
        "validate",
        "Check a LarkApp's credentials against the Open Platform from here",
        commands.validate,
    )
    va.add_argument("name")
    va.add_argument("--token-type", choices=("tenant", "app"), default=None)
    va.add_argument(
        "--allowed-base-url",
        action="append",
        default=None,
        metavar="URL",
        help="a spec.domain URL besides feishu/lark the app secret may be sent to "
        f"(repeatable) [${credentials.ALLOWED_BASE_URLS_ENV}, comma-separated, as the operator]",
    )
    va.add_argument("-o", "--output", choices=("text", "json"), default="text")
    va.add_argument("--timeout", type=float, default=10.0, help="read timeout, seconds [10]")

    de = add(
        "describe",
        "Conditions timeline, token, probes, last error and Events of a LarkApp",
        commands.describe,
    )
    de.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return commands.EXIT_ERROR
    for flag in ("kubeconfig", "context", "namespace"):
        setattr(args, flag, getattr(args, flag, None))
    if getattr(args, "all_namespaces", False) and args.namespace:
        parser.error("-n/--namespace and -A/--all-namespaces do not go together")
    try:
        return asyncio.run(_run(func, args))
    except cluster.ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return commands.EXIT_ERROR
    except credentials.CredentialError as exc:  # a Secret value, a refused domain
        print(f"error: {exc.reason}: {exc}", file=sys.stderr)
        return commands.EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kubectl lark status -o json | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return commands.EXIT_FAILED


async def _run(func: Command, args: argparse.Namespace) -> int:
    try:
        conn = cluster.connect(args.kubeconfig, args.context)
    except (OSError, ssl.SSLError) as exc:  # unreadable CA/cert/key files
        raise cluster.ClusterError(f"cannot use the kubeconfig: {exc}") from None
    namespace = args.namespace or conn.namespace
    async with cluster.session(conn) as kube:
        try:
            return await func(args, kube, namespace)
        except BrokenPipeError:
            raise
        except KubeError as exc:
            raise cluster.ClusterError(f"the apiserver refused: {exc}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise cluster.ClusterError(
                f"cannot reach the apiserver at {kube.server}: {type(exc).__name__}: {exc}"
            ) from None
