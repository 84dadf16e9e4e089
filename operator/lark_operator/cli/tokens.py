"""`validate`, `token-info`, `refresh-token`: one app's credentials and token, from a shell.

The app secret comes from LARK_APP_SECRET, never from a flag (a flag lands in shell
history and in `ps`), or from the LarkApp's Secret. Either way it is normalised and sent
only to feishu, lark or an allowed base URL, by the operator's own code (credentials.py).
Token values are printed only by `refresh-token --show-token`.
Exit status: 0 success, 1 the Open Platform refused or failed, 2 usage/configuration.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lark_operator import credentials
from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError, Token
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.timefmt import format_duration

SECRET_ENV = "LARK_APP_SECRET"
APP_ID = re.compile(r"^cli_[A-Za-z0-9]+$")  # as the CRD schema: cli_ + letters/digits, <= 64
REISSUE_WINDOW = 1800  # the platform hands out a new token only when less than this remains


class UsageError(Exception):
    """Bad arguments or environment: exit status 2."""


@dataclass(frozen=True)
class AppTarget:
    base_url: str
    app_id: str
    app_secret: str


def register(sub: Any) -> None:
    commands: list[tuple[str, str, Callable[..., Awaitable[dict[str, Any]]]]] = [
        ("validate", "Check an app's credentials against the Open Platform", _validate),
        ("token-info", "Show a token's expiry and fingerprint (never the token)", _token_info),
        ("refresh-token", "Fetch the app's token from the Open Platform", _refresh_token),
    ]
    for name, help_text, action in commands:
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}. With --app-id the app secret is read from {SECRET_ENV}.",
        )
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--app-id", help=f"the app's ID (cli_...); secret from ${SECRET_ENV}")
        source.add_argument(
            "--larkapp", metavar="NAMESPACE/NAME", help="read app and secret through the cluster"
        )
        p.add_argument(
            "--domain", default="feishu", help="feishu, lark or a base URL [feishu] (--app-id)"
        )
        p.add_argument(
            "--allowed-base-url",
            action="append",
            default=None,
            metavar="URL",
            help="a base URL besides feishu/lark the app secret may be sent to (repeatable) "
            f"[${credentials.ALLOWED_BASE_URLS_ENV}, comma-separated, as the operator]",
        )
        p.add_argument("--token-type", choices=("tenant", "app"), default="tenant")
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        p.add_argument("--timeout", type=float, default=10.0, help="read timeout, seconds [10]")
        p.add_argument("-v", "--verbose", action="store_true", help="log each API call")
        if name == "refresh-token":
            p.add_argument("--show-token", action="store_true", help="also print the token itself")
        p.set_defaults(func=lambda args, action=action: _run(args, action))


async def _target(args: argparse.Namespace) -> AppTarget:
    # The operator's allowlist, checked before anything is sent: no command sends an App
    # Secret to a URL the operator would refuse.
    allowed = credentials.allowed_base_urls(args.allowed_base_url)
    if args.larkapp:
        namespace, _, name = args.larkapp.partition("/")
        if not namespace or not name or "/" in name:
            raise UsageError(f"--larkapp must be NAMESPACE/NAME: {args.larkapp!r}")
        try:
            # Lazy: it needs the Kubernetes client, which the bare-app path does not.
            cluster = importlib.import_module("lark_operator.cli.cluster")
        except ImportError as exc:
            raise UsageError(f"--larkapp is not available in this build ({exc})") from None
        try:
            found = cluster.resolve_larkapp(namespace, name, allowed=allowed)
            if inspect.isawaitable(found):
                found = await found
        except credentials.CredentialError as exc:
            raise UsageError(f"LarkApp {namespace}/{name}: {exc.reason}: {exc}") from None
        except Exception as exc:  # the cluster's reason (not found, forbidden)
            raise UsageError(f"cannot read LarkApp {namespace}/{name}: {exc}") from None
        base_url, app_id, app_secret = found
        return AppTarget(str(base_url).rstrip("/"), str(app_id), str(app_secret))
    if not APP_ID.match(args.app_id) or len(args.app_id) > 64:
        raise UsageError(
            f"--app-id must look like cli_ followed by letters/digits: {args.app_id!r}"
        )
    try:
        base_url = credentials.resolve_base_url(
            args.domain, allowed, field="--domain", allow_with=credentials.ALLOW_IN_CLI
        )
    except credentials.CredentialError as exc:
        raise UsageError(f"{exc.reason}: {exc}") from None
    secret = credentials.normalise_text(os.environ.get(SECRET_ENV, ""))
    if secret is None:
        raise UsageError(
            f"{SECRET_ENV} is not set: export the app secret in it "
            "(it is never taken as a flag, which would land in shell history)"
        )
    return AppTarget(base_url, args.app_id, secret)


def _run(args: argparse.Namespace, action: Callable[..., Awaitable[dict[str, Any]]]) -> int:
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        # The error is printed once below; keep Python's last-resort handler from
        # printing the client's retry warnings as well.
        quiet = logging.getLogger("lark_operator.openplatform")
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
    try:
        result = asyncio.run(_with_client(args, action))
    except UsageError as exc:
        print(f"lark-operator {args.command}: {exc}", file=sys.stderr)
        return 2
    except OpenPlatformError as err:
        _print_error(args, err)
        return 1
    _print_result(args, result)
    return 0


async def _with_client(
    args: argparse.Namespace, action: Callable[..., Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    target = await _target(args)
    async with OpenPlatformClient(read_timeout=args.timeout) as client:
        token = await client.get_token(
            target.base_url, target.app_id, target.app_secret, args.token_type
        )
    return await action(target, token, args)


def _describe(target: AppTarget, token: Token) -> dict[str, Any]:
    remaining = max(0.0, token.remaining(time.time()))
    return {
        "ok": True,
        "app_id": target.app_id,
        "base_url": target.base_url,
        "token_type": token.token_type,
        "fingerprint": token.fingerprint(),
        "expires_at": _rfc3339(token.expires_at),
        "expires_in_seconds": int(remaining),
        "renewable": remaining < REISSUE_WINDOW,
    }


async def _validate(target: AppTarget, token: Token, args: argparse.Namespace) -> dict[str, Any]:
    return {**_describe(target, token), "valid": True}


async def _token_info(target: AppTarget, token: Token, args: argparse.Namespace) -> dict[str, Any]:
    return _describe(target, token)


async def _refresh_token(
    target: AppTarget, token: Token, args: argparse.Namespace
) -> dict[str, Any]:
    out = _describe(target, token)
    if args.show_token:
        out["token"] = token.value
    return out


def _print_result(args: argparse.Namespace, r: dict[str, Any]) -> None:
    if args.output == "json":
        print(json.dumps(r, indent=2))
        return
    left = format_duration(r["expires_in_seconds"])
    if args.command == "validate":
        print(f"OK: credentials of {r['app_id']} are valid at {r['base_url']}")
        print(f"{r['token_type']} token {r['fingerprint']} expires in {left}")
        return
    if args.command == "token-info":
        rows = [
            ("app_id", r["app_id"]),
            ("base_url", r["base_url"]),
            ("token_type", r["token_type"]),
            ("fingerprint", r["fingerprint"]),
            ("expires_at", r["expires_at"]),
            ("remaining", left),
            ("renewable", "yes" if r["renewable"] else "no (more than 30m left)"),
        ]
        for key, value in rows:
            print(f"{key + ':':<13}{value}")
        return
    print(f"{r['token_type']} token {r['fingerprint']} expires at {r['expires_at']} (in {left})")
    if not r["renewable"]:
        print(
            "note: the platform re-issues a token only when less than 30m remain; until then "
            "it returns this same token"
        )
    if "token" in r:
        print(f"token: {r['token']}")


def _print_error(args: argparse.Namespace, err: OpenPlatformError) -> None:
    if args.output == "json":
        error = {
            "reason": err.reason,
            "code": err.code,
            "http_status": err.http_status,
            "message": str(err),
            "hint": hint_for(err.reason),
            "retry_after": err.retry_after,
        }
        print(json.dumps({"ok": False, "error": error}, indent=2))
        return
    code = f"code {err.code}" if err.code is not None else err.code_label
    print(f"error: {err.reason} ({code}): {err.msg or 'no message'}", file=sys.stderr)
    if err.retry_after is not None:
        print(f"retry after: {format_duration(err.retry_after)}", file=sys.stderr)
    print(f"hint: {hint_for(err.reason)}", file=sys.stderr)


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
