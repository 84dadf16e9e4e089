"""The `kubectl lark` sub-commands: each reads the cluster through `cli.cluster`, prints
through `render`, and returns its exit status (see EXIT_* below)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from lark_operator import credentials
from lark_operator.cli import cluster
from lark_operator.cli import refresh as larkapp_refresh
from lark_operator.cli.kubectl_plugin import render
from lark_operator.kube import KubeClient
from lark_operator.vocabulary.hints import hint_for
from lark_operator.vocabulary.names import REFRESH_ANNOTATION

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
UNCHANGED_NOTE = "; unchanged: the platform re-issues only when less than 30m remain"
now = larkapp_refresh.now


# --- status -------------------------------------------------------------------------------
async def status(args: argparse.Namespace, kube: KubeClient, namespace: str) -> int:
    scope = None if args.all_namespaces else namespace
    items = await cluster.list_larkapps(kube, scope)
    items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    # Every ClusterLarkApp with -A; in one namespace, the ones its LarkApps name. A user
    # who may not read them (a namespace's tenant) just does not see that table.
    shared = await cluster.list_cluster_larkapps(kube) or []
    if scope is not None:
        named = {((o.get("spec") or {}).get("appRef") or {}).get("name") for o in items}
        shared = [c for c in shared if c["metadata"]["name"] in named]
    shared.sort(key=lambda o: o["metadata"]["name"])
    t = now()
    rows = [render.row(o, t) for o in items]
    clusters = [render.cluster_row(o, t) for o in shared]
    if args.output == "json":
        print(json.dumps(render.status_json(rows, clusters), indent=2))
    elif not rows and not clusters:
        where = "any namespace" if scope is None else f"namespace {scope!r}"
        print(f"No LarkApps found in {where}.", file=sys.stderr)
    else:
        print(render.status_text(rows, t, clusters))
    ready = all(r.is_ready for r in rows) and all(c.is_ready for c in clusters)
    if args.fail_if_not_ready and not ready:
        return EXIT_FAILED
    return EXIT_OK


# --- describe -----------------------------------------------------------------------------
async def describe(args: argparse.Namespace, kube: KubeClient, namespace: str) -> int:
    obj = await cluster.get_larkapp(kube, namespace, args.name)
    events = await cluster.larkapp_events(kube, obj)
    print(render.describe(obj, events, now()))
    return EXIT_OK


# --- refresh ------------------------------------------------------------------------------
async def refresh(args: argparse.Namespace, kube: KubeClient, namespace: str) -> int:
    try:
        req = await larkapp_refresh.request(kube, namespace, args.name)
    except larkapp_refresh.Suspended as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"larkapp {namespace}/{args.name}: refresh requested ({REFRESH_ANNOTATION}={req.value})")
    if not args.wait:
        return EXIT_OK
    try:
        outcome = await larkapp_refresh.wait(kube, req, args.timeout)
    except larkapp_refresh.Suspended as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if outcome is None:
        print(
            f"error: the operator did not handle the request within {args.timeout:g}s: is it "
            f"running and watching namespace {namespace!r}?",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return _report_refresh(outcome)


def _report_refresh(outcome: larkapp_refresh.Outcome) -> int:
    status = outcome.larkapp.get("status") or {}
    err = outcome.error
    if err:
        code = f" (code {err['code']})" if err.get("code") is not None else ""
        reason, message = str(err.get("reason")), str(err.get("message"))
        message = message.removeprefix(f"{reason}: ")  # the operator's text may repeat it
        print(f"refresh failed: {reason}{code}: {message}", file=sys.stderr)
        print(f"hint: {err.get('hint') or hint_for(str(err.get('reason')))}", file=sys.stderr)
        return EXIT_FAILED
    token = status.get("token") or {}
    if not token:
        print("refresh handled, but no token is recorded yet", file=sys.stderr)
        return EXIT_FAILED
    expires = render.parse_time(token.get("expiresAt"))
    left = render.countdown(expires, now())
    print(
        f"token {token.get('fingerprint')} in Secret {token.get('secretName')} expires at "
        f"{token.get('expiresAt')} (in {left})" + ("" if outcome.fresh else UNCHANGED_NOTE)
    )
    return EXIT_OK


# --- validate -----------------------------------------------------------------------------
async def validate(args: argparse.Namespace, kube: KubeClient, namespace: str) -> int:
    from lark_operator.openplatform import OpenPlatformClient, OpenPlatformError

    allowed = credentials.allowed_base_urls(args.allowed_base_url)
    base_url, app_id, secret, obj = await cluster.app_credentials(
        kube, namespace, args.name, allowed
    )
    token_type = args.token_type or _default_token_type(obj)
    subject = f"LarkApp {namespace}/{args.name} ({app_id})"
    try:
        async with OpenPlatformClient(read_timeout=args.timeout) as client:
            token = await client.get_token(base_url, app_id, secret, token_type)
    except OpenPlatformError as err:
        code = f"code {err.code}" if err.code is not None else err.code_label
        verdict = "INVALID" if err.kind.value in ("credentials", "config") else "UNKNOWN"
        if args.output == "json":
            doc = {
                "valid": False,
                "verdict": verdict,
                "larkapp": f"{namespace}/{args.name}",
                "appId": app_id,
                "baseUrl": base_url,
                "error": {"reason": err.reason, "code": err.code, "message": err.msg},
                "hint": hint_for(err.reason),
            }
            print(json.dumps(doc, indent=2))
        else:
            print(f"{verdict}: {subject} at {base_url}: {err.reason} ({code}): {err.msg}")
            print(f"hint: {hint_for(err.reason)}")
        return EXIT_FAILED
    left = render.span(token.remaining(time.time()))
    if args.output == "json":
        doc = {
            "valid": True,
            "verdict": "VALID",
            "larkapp": f"{namespace}/{args.name}",
            "appId": app_id,
            "baseUrl": base_url,
            "tokenType": token_type,
            "fingerprint": token.fingerprint(),
            "expiresInSeconds": int(token.remaining(time.time())),
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"VALID: {subject}: the Open Platform at {base_url} accepted the credentials")
        print(f"{token_type} token {token.fingerprint()} expires in {left}")
    return EXIT_OK


def _default_token_type(obj: Mapping[str, Any]) -> str:
    tokens = (obj.get("spec") or {}).get("tokens") or {}
    return "app" if tokens.get("tenant") is False and tokens.get("app") else "tenant"
