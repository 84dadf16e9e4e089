"""`lark-operator` console script: one sub-command per module in this package.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` (returning the exit status). Imports stay inside the modules so that a quick
command (validate-env) does not pay for kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lark_operator import __version__

COMMAND_MODULES = ("run", "tokens", "health", "emulator", "dev")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lark-operator",
        description="Kubernetes operator for Feishu / Lark Open Platform apps.",
    )
    parser.add_argument("--version", action="version", version=f"lark-operator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lark_operator.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
