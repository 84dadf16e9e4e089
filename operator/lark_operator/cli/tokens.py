"""`validate`, `token-info`, `refresh-token`: one app's credentials and token, from a shell.

With `--app-id` they ask the Open Platform; the app secret comes from LARK_APP_SECRET,
never from a flag (a flag lands in shell history and in `ps`). With `--larkapp NS/NAME`,
`validate` asks the platform with the LarkApp's own Secret, while `token-info` reads the
token Secret workloads mount (no upstream call) and `refresh-token` asks the operator to
refresh it (what `kubectl lark refresh --wait` does) and reads the Secret it wrote. An app
secret is normalised and sent only to feishu, lark or an allowed base URL, by the
operator's own code (credentials.py). Token values are printed only by `refresh-token
--show-token`.
Exit status: 0 success; 1 the Open Platform refused or failed, no token held, the refresh
failed or was not handled in time, or the LarkApp is suspended; 2 usage/configuration.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lark_operator import credentials
from lark_operator.cli.environment import APP_ID
from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError, Token
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.timefmt import format_duration

SECRET_ENV = "LARK_APP_SECRET"
REISSUE_WINDOW = 1800  # the platform hands out a new token only when less than this remains
READ_TIMEOUT, WAIT_TIMEOUT = 10.0, 60.0  # --timeout's defaults: a call; waiting for the operator


class UsageError(Exception):
    """Bad arguments or environment: exit status 2."""


class Failed(Exception):
    """The command could not do its job (exit status 1): no token held, a refresh the
    operator reported as failed or did not handle, a suspended LarkApp."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error  # status.lastError of a failed refresh


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
    larkapp_help = {
        "validate": "the LarkApp's app and secret, read through the cluster",
        "token-info": "the token in the LarkApp's token Secret (no call to the platform)",
        "refresh-token": "have the operator refresh the LarkApp's token Secret, and wait",
    }
    for name, help_text, action in commands:
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}. With --app-id the app secret is read from {SECRET_ENV}; "
            f"with --larkapp: {larkapp_help[name]}.",
        )
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--app-id", help=f"the app's ID (cli_...); secret from ${SECRET_ENV}")
        source.add_argument("--larkapp", metavar="NAMESPACE/NAME", help=larkapp_help[name])
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
        p.add_argument(
            "--token-type",
            choices=("tenant", "app"),
            default=None,
            help="[tenant; --larkapp: the one its Secret holds, tenant first]",
        )
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        timeout_help = f"read timeout, seconds [{READ_TIMEOUT:g}]"
        if name == "refresh-token":
            timeout_help += f"; --larkapp: how long to wait for the operator [{WAIT_TIMEOUT:g}]"
        p.add_argument("--timeout", type=float, default=None, help=timeout_help)
        p.add_argument("-v", "--verbose", action="store_true", help="log each API call")
        if name == "refresh-token":
            p.add_argument("--show-token", action="store_true", help="also print the token itself")
        p.set_defaults(func=lambda args, action=action: _run(args, action))


async def _target(args: argparse.Namespace) -> AppTarget:
    # The operator's allowlist, checked before anything is sent: no command sends an App
    # Secret to a URL the operator would refuse.
    allowed = credentials.allowed_base_urls(args.allowed_base_url)
    if args.larkapp:
        namespace, name = _larkapp_ref(args.larkapp)
        cluster = _cluster()
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


def _larkapp_ref(ref: str) -> tuple[str, str]:
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise UsageError(f"--larkapp must be NAMESPACE/NAME: {ref!r}")
    return namespace, name


def _cluster() -> Any:
    try:
        # Lazy: it needs the Kubernetes client, which the bare-app path does not.
        return importlib.import_module("lark_operator.cli.cluster")
    except ImportError as exc:
        raise UsageError(f"--larkapp is not available in this build ({exc})") from None


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
        if args.larkapp and args.command != "validate":
            result = asyncio.run(_through_cluster(args))
        else:
            result = asyncio.run(_with_client(args, action))
    except UsageError as exc:
        print(f"lark-operator {args.command}: {exc}", file=sys.stderr)
        return 2
    except Failed as exc:
        _print_failed(args, exc)
        return 1
    except OpenPlatformError as err:
        _print_error(args, err)
        return 1
    _print_result(args, result)
    return 0


async def _with_client(
    args: argparse.Namespace, action: Callable[..., Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    target = await _target(args)
    async with OpenPlatformClient(read_timeout=args.timeout or READ_TIMEOUT) as client:
        token = await client.get_token(
            target.base_url, target.app_id, target.app_secret, args.token_type or "tenant"
        )
    return await action(target, token, args)


async def _through_cluster(args: argparse.Namespace) -> dict[str, Any]:
    """token-info / refresh-token --larkapp: the token Secret, as workloads see it."""
    namespace, name = _larkapp_ref(args.larkapp)
    cluster = _cluster()
    fresh: bool | None = None  # refresh-token: whether the platform issued a new token
    try:
        if args.command == "refresh-token":
            held, fresh = await _operator_refresh(cluster, namespace, name, args)
        else:
            held = await cluster.read_larkapp_token(namespace, name, token_type=args.token_type)
    except cluster.NoToken as exc:
        raise Failed(str(exc)) from None
    except Failed:
        raise
    except Exception as exc:  # the cluster's reason (not found, forbidden, unreachable)
        raise UsageError(f"cannot read LarkApp {namespace}/{name}: {exc}") from None
    token = Token(held.value, held.token_type, held.expires_at, obtained_at=0.0)
    out = {
        **_describe(held.app_id or "-", held.base_url, token),
        "larkapp": f"{namespace}/{name}",
        "secret": held.secret_name,
    }
    if fresh is not None:
        out["refreshed"] = fresh
    if getattr(args, "show_token", False):
        out["token"] = token.value
    return out


async def _operator_refresh(
    cluster: Any, namespace: str, name: str, args: argparse.Namespace
) -> tuple[Any, bool]:
    """What `kubectl lark refresh --wait` does, then the token Secret the operator wrote."""
    from lark_operator.cli import refresh

    timeout = args.timeout or WAIT_TIMEOUT
    async with cluster.session() as kube:
        try:
            req = await refresh.request(kube, namespace, name)
            outcome = await refresh.wait(kube, req, timeout)
        except refresh.Suspended as exc:
            raise Failed(str(exc)) from None
        if outcome is None:
            raise Failed(
                f"the operator did not handle the refresh of {namespace}/{name} within "
                f"{timeout:g}s: is it running and watching namespace {namespace!r}?"
            )
        if outcome.error:
            raise Failed("refresh failed", dict(outcome.error))
        held = await cluster.larkapp_token(kube, namespace, name, args.token_type)
    return held, outcome.fresh


def _describe(app_id: str, base_url: str, token: Token) -> dict[str, Any]:
    remaining = max(0.0, token.remaining(time.time()))
    return {
        "ok": True,
        "app_id": app_id,
        "base_url": base_url,
        "token_type": token.token_type,
        "fingerprint": token.fingerprint(),
        "expires_at": _rfc3339(token.expires_at),
        "expires_in_seconds": int(remaining),
        "renewable": remaining < REISSUE_WINDOW,
    }


async def _validate(target: AppTarget, token: Token, args: argparse.Namespace) -> dict[str, Any]:
    return {**_describe(target.app_id, target.base_url, token), "valid": True}


async def _token_info(target: AppTarget, token: Token, args: argparse.Namespace) -> dict[str, Any]:
    return _describe(target.app_id, target.base_url, token)


async def _refresh_token(
    target: AppTarget, token: Token, args: argparse.Namespace
) -> dict[str, Any]:
    out = _describe(target.app_id, target.base_url, token)
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
        rows = [("larkapp", r["larkapp"]), ("secret", r["secret"])] if "secret" in r else []
        rows += [
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
    where = f" in Secret {r['secret']}" if "secret" in r else ""
    print(
        f"{r['token_type']} token {r['fingerprint']}{where} expires at {r['expires_at']} "
        f"(in {left})"
    )
    if r.get("refreshed") is False or ("refreshed" not in r and not r["renewable"]):
        print(
            "note: the platform re-issues a token only when less than 30m remain; until then "
            "it returns this same token"
        )
    if "token" in r:
        print(f"token: {r['token']}")


def _print_failed(args: argparse.Namespace, exc: Failed) -> None:
    err = exc.error
    if args.output == "json":
        error: dict[str, Any] = {"message": str(exc)}
        if err:
            keys = ("reason", "code", "message", "hint")
            error = {k: err.get(k) for k in keys}
            error["hint"] = error["hint"] or hint_for(str(err.get("reason")))
        print(json.dumps({"ok": False, "error": error}, indent=2))
        return
    if not err:
        print(f"lark-operator {args.command}: {exc}", file=sys.stderr)
        return
    reason = str(err.get("reason"))
    code = f"code {err['code']}" if err.get("code") is not None else "no code"
    message = str(err.get("message") or "no message").removeprefix(f"{reason}: ")
    print(f"error: {reason} ({code}): {message}", file=sys.stderr)
    print(f"hint: {err.get('hint') or hint_for(reason)}", file=sys.stderr)


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
