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
from lark_operator.emulator.store import StoreApp, parse_store_app, parse_tenant


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
    store = p.add_argument_group("store (marketplace) apps")
    store.add_argument(
        "--store-app",
        action="append",
        default=[],
        metavar="APP_ID:SECRET:ENCRYPT_KEY:VERIFICATION_TOKEN",
        help="an emulated store app (repeatable): tokens through app_tickets only",
    )
    store.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="APP_ID:TENANT_KEY",
        help="a tenant that has installed a store app (repeatable)",
    )
    store.add_argument(
        "--event-url", default=None, help="where app_ticket and tenant events are pushed"
    )
    store.add_argument(
        "--ticket-interval",
        type=float,
        default=3600.0,
        help="an app_ticket is pushed to --event-url this often, s [3600]",
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


def parse_store(
    specs: list[str], tenants: list[str]
) -> tuple[dict[str, tuple[str, StoreApp]], list[tuple[str, str]]]:
    store = {}
    for spec in specs:
        app_id, secret, app = parse_store_app(spec)
        store[app_id] = (secret, app)
    pairs = [parse_tenant(t) for t in tenants]
    for app_id, _ in pairs:
        if app_id not in store:
            raise ValueError(f"--tenant names {app_id}, which is not a --store-app")
    return store, pairs


def run(args: argparse.Namespace) -> int:
    try:
        apps = parse_apps(args.app)
        store, tenants = parse_store(args.store_app, args.tenant)
    except ValueError as exc:
        print(f"lark-operator emulator: {exc}", file=sys.stderr)
        return 2
    bad = args.token_ttl <= 0 or args.reissue_window < 0 or args.ticket_interval <= 0
    if bad or not 0 <= args.port <= 65535:
        print(
            "lark-operator emulator: --token-ttl and --ticket-interval must be > 0, "
            "--reissue-window >= 0 and --port between 0 and 65535",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(args, apps, store, tenants))
    except OSError as exc:  # typically: address already in use
        print(
            f"lark-operator emulator: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(
    args: argparse.Namespace,
    apps: dict[str, str],
    store: dict[str, tuple[str, StoreApp]],
    tenants: list[tuple[str, str]],
) -> None:
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
        store_apps=store,
        tenants=tenants,
        event_url=args.event_url,
        ticket_interval=args.ticket_interval,
    ) as handle:
        print(f"emulator listening on {handle.base_url}", flush=True)
        await stop.wait()
