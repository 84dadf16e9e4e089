"""The CLI's way into the cluster — the operator's own credential loader
(`lark_operator.kube.load_auth`: kubeconfig as kubectl reads it, or the pod's service
account) — and a LarkApp's app credentials / probe targets read through it.

`lark-operator validate --larkapp` uses `resolve_larkapp`, `token-info --larkapp` reads the
token Secret workloads mount (`read_larkapp_token`, no upstream call), `health-check
--larkapp` uses `resolve_probe_targets`, and `kubectl lark` uses all of it.
Secret values and the domain allowlist go through `credentials`, the operator's own code.
Errors are `ClusterError`s (the cluster) or `CredentialError`s (a Secret value, a refused
domain) whose text names objects, keys and URLs, never a Secret's value.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lark_operator.credentials import ALLOW_IN_CLI, resolve_base_url, secret_value
from lark_operator.kube import Auth, AuthError, KubeClient, KubeError, load_auth
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import Claim, claim, issued_for, read_token_secret, templated


class ClusterError(Exception):
    """Something about the cluster or the LarkApp that a person must fix (exit status 2)."""


class NoToken(Exception):
    """The LarkApp's token Secret holds no usable token (yet): the message says why."""


# --- kubeconfig ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk, and the namespace a bare command means."""

    auth: Auth

    @property
    def namespace(self) -> str:
        return self.auth.namespace

    @property
    def context(self) -> str | None:
        return self.auth.context

    def client(self) -> KubeClient:
        return KubeClient(self.auth, max_connections=4)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """The connection kubectl would use with the same flags and environment."""
    try:
        return Connection(load_auth(kubeconfig, context))
    except AuthError as exc:
        raise ClusterError(str(exc)) from None


@contextlib.asynccontextmanager
async def session(conn: Connection | None = None) -> AsyncIterator[KubeClient]:
    """A KubeClient for the duration of a command, closed afterwards."""
    kube = (conn or connect()).client()
    try:
        yield kube
    finally:
        await kube.close()


# --- LarkApps and what they reference -----------------------------------------------------
async def get_larkapp(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    try:
        obj = await kube.get_larkapp(namespace, name)
    except KubeError as exc:
        raise ClusterError(_kube_reason(exc, f"LarkApp {namespace}/{name}")) from None
    if obj is None:
        raise ClusterError(f'LarkApp "{name}" not found in namespace "{namespace}"')
    return obj


async def list_larkapps(kube: KubeClient, namespace: str | None) -> list[dict[str, Any]]:
    try:
        return await kube.list_larkapps(namespace)
    except KubeError as exc:
        where = f"namespace {namespace}" if namespace else "all namespaces"
        raise ClusterError(_kube_reason(exc, f"LarkApps in {where}")) from None


async def list_cluster_larkapps(kube: KubeClient) -> list[dict[str, Any]] | None:
    """Every ClusterLarkApp; None when this user may not list them (or there is no CRD)."""
    try:
        return await kube.list_cluster_larkapps()
    except KubeError as exc:
        if exc.status in (403, 404):
            return None
        raise ClusterError(_kube_reason(exc, "ClusterLarkApps")) from None


async def larkapp_events(kube: KubeClient, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The object's Events, oldest first (as `kubectl describe` lists them)."""
    meta = obj["metadata"]
    selector = f"involvedObject.kind=LarkApp,involvedObject.name={meta['name']}"
    path = f"/api/v1/namespaces/{meta['namespace']}/events"
    try:
        items = (await kube.request("GET", path, params={"fieldSelector": selector}))["items"]
    except KubeError as exc:
        raise ClusterError(_kube_reason(exc, "Events")) from None
    uid = meta.get("uid")
    # Same name, older object: its Events are not this one's story.
    mine = [e for e in items if not uid or e["involvedObject"].get("uid") in (None, uid)]
    return sorted(mine, key=event_time)


def event_time(event: Mapping[str, Any]) -> str:
    meta = event.get("metadata") or {}
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or meta.get("creationTimestamp")
        or ""
    )


def parse_spec(obj: Mapping[str, Any]) -> LarkAppSpec:
    try:
        return LarkAppSpec.parse(obj.get("spec"))
    except ValueError as exc:
        meta = obj["metadata"]
        raise ClusterError(
            f"LarkApp {meta['namespace']}/{meta['name']} has an unusable spec: "
            f"{exc.__class__.__name__}"
        ) from None


async def read_secret_value(
    kube: KubeClient, namespace: str, name: str, key: str, field: str
) -> str:
    """The value of one Secret key, read and normalised as the operator does
    (credentials.secret_value; CredentialError when missing, empty or not text); `field`
    names the spec field that points here."""
    try:
        secret = await kube.get_secret(namespace, name)
    except KubeError as exc:
        raise ClusterError(_kube_reason(exc, f"Secret {namespace}/{name} ({field})")) from None
    return secret_value(secret, name, key, namespace=namespace, field=field)


async def app_credentials(
    kube: KubeClient, namespace: str, name: str, allowed: Collection[str]
) -> tuple[str, str, str, dict[str, Any]]:
    """(base URL, app ID, app secret, the LarkApp object). A spec.domain outside `allowed`
    (and not feishu/lark) is refused before the Secret is even read: CredentialError
    DomainNotAllowed, as the operator refuses it."""
    obj = await get_larkapp(kube, namespace, name)
    app = parse_spec(obj).credentials()
    if app is None:
        raise ClusterError(app_ref_note(obj))
    base_url = resolve_base_url(app.domain, allowed, allow_with=ALLOW_IN_CLI)
    ref = app.app_secret_ref
    secret = await read_secret_value(kube, namespace, ref.name, ref.key, "spec.appSecretRef")
    return base_url, app.app_id, secret, obj


def app_ref_note(obj: Mapping[str, Any]) -> str:
    """Why a command that needs the App Secret does not run for a LarkApp with appRef."""
    meta, ref = obj["metadata"], (obj.get("spec") or {}).get("appRef") or {}
    return (
        f"LarkApp {meta['namespace']}/{meta['name']} uses ClusterLarkApp {ref.get('name')!r} "
        "(spec.appRef): its App Secret is kept in the operator's cluster resource namespace, "
        "not here. The ClusterLarkApp's status says whether its credentials work: "
        f"kubectl get clusterlarkapp {ref.get('name')}"
    )


async def resolve_larkapp(
    namespace: str, name: str, *, allowed: Collection[str], conn: Connection | None = None
) -> tuple[str, str, str]:
    """(base URL, app ID, app secret) of a LarkApp, through the current kubeconfig."""
    async with session(conn) as kube:
        base_url, app_id, secret, _ = await app_credentials(kube, namespace, name, allowed)
    return base_url, app_id, secret


@dataclass(frozen=True)
class HeldToken:
    """One token as the LarkApp's token Secret holds it, i.e. as its workloads see it."""

    larkapp: dict[str, Any] = field(repr=False)
    secret_name: str
    app_id: str | None  # as written into the Secret
    base_url: str  # the platform that issued it
    token_type: str  # tenant | app
    value: str = field(repr=False)
    expires_at: float


async def larkapp_token(
    kube: KubeClient, namespace: str, name: str, token_type: str | None = None
) -> HeldToken:
    """The token in the LarkApp's token Secret, read as the operator reads it back
    (tokens.secret.read_token_secret): `token_type`, else the tenant token when held, else
    the app token. NoToken when there is none to read, saying why (the Secret is missing,
    not the operator's, or lacks that type), with the LarkApp's own reason when it has one."""
    obj = await get_larkapp(kube, namespace, name)
    spec = parse_spec(obj)
    secret_name = spec.token_secret_name(name)
    try:
        secret = await kube.get_secret(namespace, secret_name)
    except KubeError as exc:
        raise ClusterError(_kube_reason(exc, f"token Secret {namespace}/{secret_name}")) from None
    owner, why = claim(secret, name)
    # Only a Secret the operator wrote for this LarkApp holds its token.
    held = read_token_secret(secret) if owner is Claim.OURS else None
    if owner is Claim.OURS and templated(secret):
        raise NoToken(
            f"Secret {secret_name} is shaped by spec.target.template: its keys are the "
            "template's, not the token's; compare status.token.fingerprint instead"
        )
    if secret is None or held is None:
        what = "does not exist" if secret is None else f"holds no token of it ({why})"
        raise NoToken(
            f"LarkApp {namespace}/{name} has no token yet: Secret {secret_name} {what}"
            + _ready_reason(obj)
        )
    kind = token_type or ("tenant" if "tenant" in held.values else "app")
    if kind not in held.values:
        raise NoToken(
            f"Secret {secret_name} holds no {kind} token (spec.tokens.{kind} is "
            f"{str(getattr(spec.tokens, kind, False)).lower()}); it holds: "
            + ", ".join(sorted(held.values))
        )
    app_id, base_url = issued_for(secret)
    return HeldToken(
        obj,
        secret_name,
        app_id,
        (base_url or spec.base_url()).rstrip("/"),
        kind,
        held.values[kind],
        held.expires_at[kind],
    )


def _ready_reason(obj: Mapping[str, Any]) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") != "True":
            return f" (Ready={c.get('status')}, {c.get('reason')}: {c.get('message')})"
    return ""


async def read_larkapp_token(
    namespace: str, name: str, *, token_type: str | None = None, conn: Connection | None = None
) -> HeldToken:
    """`larkapp_token` through the current kubeconfig."""
    async with session(conn) as kube:
        return await larkapp_token(kube, namespace, name, token_type)


async def resolve_probe_targets(
    namespace: str,
    name: str,
    *,
    dependencies: Collection[str] | None = None,
    conn: Connection | None = None,
) -> list[Any]:
    """A ProbeTarget per dependency the LarkApp configures (only those in `dependencies`
    when given, so that a missing Secret of one that is not asked for does not matter),
    URLs read from its Secrets."""
    from lark_operator.probes.target import resolve

    async with session(conn) as kube:
        spec = parse_spec(await get_larkapp(kube, namespace, name))

        async def read(secret: str, key: str, field: str) -> str:
            return await read_secret_value(kube, namespace, secret, key, field)

        return [
            await resolve(dep, spec.probes, read)
            for dep in spec.probes.configured
            if dependencies is None or dep in dependencies
        ]


def _kube_reason(exc: KubeError, what: str) -> str:
    if exc.status == 403:
        return f"reading {what} is forbidden for this user: {exc}"
    if exc.status == 401:
        return f"the apiserver did not accept the kubeconfig's credentials ({what})"
    return f"reading {what} failed: {exc}"
