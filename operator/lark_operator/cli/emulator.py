"""`lark-operator emulator`: a local Feishu/Lark Open Platform stand-in for tests and demos.

Prints one line "emulator listening on http://HOST:PORT" once it accepts connections
(--port 0 picks a free port), then serves until SIGINT/SIGTERM. The controls live under
/_emulator/ (faults, apps, calls, tokens, clock): see lark_operator.emulator.server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from lark_operator.emulator import running_emulator


def register(sub: Any) -> None:
    p = sub.add_parser(
        "emulator",
        help="Run a local Feishu/Lark Open Platform stand-in",
        description="Serve the Open Platform auth API locally, with fault injection under "
        "/_emulator/. The secrets given here are test secrets of emulated apps.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind [127.0.0.1]")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one [0]")
    p.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="APP_ID:SECRET",
        help="an emulated app (repeatable; more can be added with POST /_emulator/apps)",
    )
    p.add_argument("--token-ttl", type=float, default=7200.0, help="token lifetime, s [7200]")
    p.add_argument(
        "--reissue-window",
        type=float,
        default=1800.0,
        help="a new token is issued when less than this remains, s [1800]",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every emulated call")
    p.set_defaults(func=run)


def parse_apps(specs: list[str]) -> dict[str, str]:
    apps: dict[str, str] = {}
    for spec in specs:
        app_id, sep, secret = spec.partition(":")
        if not sep or not app_id or not secret:
            # The argument is not echoed: it may hold a secret.
            raise ValueError("--app must be APP_ID:SECRET with both parts non-empty")
        apps[app_id] = secret
    return apps


def run(args: argparse.Namespace) -> int:
    try:
        apps = parse_apps(args.app)
    except ValueError as exc:
        print(f"lark-operator emulator: {exc}", file=sys.stderr)
        return 2
    if args.token_ttl <= 0 or args.reissue_window < 0 or not 0 <= args.port <= 65535:
        print(
            "lark-operator emulator: --token-ttl must be > 0, --reissue-window >= 0 and "
            "--port between 0 and 65535",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(args, apps))
    except OSError as exc:  # typically: address already in use
        print(
            f"lark-operator emulator: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(args: argparse.Namespace, apps: dict[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_emulator(
        apps,
        host=args.host,
        port=args.port,
        token_ttl=args.token_ttl,
        reissue_window=args.reissue_window,
    ) as handle:
        print(f"emulator listening on {handle.base_url}", flush=True)
        await stop.wait()
