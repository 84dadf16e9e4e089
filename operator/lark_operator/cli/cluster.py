"""The CLI's way into the cluster: kubeconfig like kubectl reads it, and a LarkApp's app
credentials / probe targets read through it.

`lark-operator validate --larkapp` uses `resolve_larkapp`, `token-info --larkapp` reads the
token Secret workloads mount (`read_larkapp_token`, no upstream call), `health-check
--larkapp` uses `resolve_probe_targets`, and `kubectl lark` uses all of it.
Secret values and the domain allowlist go through `credentials`, the operator's own code.
Errors are `ClusterError`s (the cluster) or `CredentialError`s (a Secret value, a refused
domain) whose text names objects, keys and URLs, never a Secret's value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lark_operator.credentials import ALLOW_IN_CLI, resolve_base_url, secret_value
from lark_operator.kube import SA_TOKEN_PATH, KubeClient, KubeError, _Auth, load_auth
from lark_operator.models import LarkAppSpec
from lark_operator.tokens.secret import Claim, claim, issued_for, read_token_secret

SA_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class ClusterError(Exception):
    """Something about the cluster or the LarkApp that a person must fix (exit status 2)."""


class NoToken(Exception):
    """The LarkApp's token Secret holds no usable token (yet): the message says why."""


# --- kubeconfig ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk, and the namespace a bare command means."""

    auth: _Auth
    namespace: str
    context: str | None

    def client(self) -> KubeClient:
        return KubeClient(self.auth, max_connections=4)


def kubeconfig_paths(explicit: str | None = None) -> list[Path]:
    """--kubeconfig, else every file in $KUBECONFIG, else ~/.kube/config (as kubectl)."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return paths or [Path("~/.kube/config").expanduser()]


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """The connection kubectl would use with the same flags and environment."""
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if kubeconfig and not existing:
        raise ClusterError(f"kubeconfig {kubeconfig} does not exist")
    if not existing:
        if os.path.exists(SA_TOKEN_PATH) and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return Connection(load_auth(), _in_cluster_namespace(), None)
        raise ClusterError(
            "no kubeconfig: set KUBECONFIG, pass --kubeconfig, or run `lark-operator dev up`"
        )
    merged = _merge(existing)
    name = context or merged.current_context
    if not name:
        raise ClusterError("the kubeconfig names no current-context: pass --context")
    ctx = merged.contexts.get(name)
    if ctx is None:
        raise ClusterError(f"context {name!r} is not in the kubeconfig")
    cluster = merged.clusters.get(str(ctx.get("cluster")))
    if cluster is None:
        raise ClusterError(f"context {name!r} names cluster {ctx.get('cluster')!r}, not defined")
    user = merged.users.get(str(ctx.get("user")), {})
    return Connection(_auth(cluster, user), str(ctx.get("namespace") or "default"), name)


def _in_cluster_namespace() -> str:
    try:
        return Path(SA_NAMESPACE_PATH).read_text().strip() or "default"
    except OSError:
        return "default"


@dataclass
class _Merged:
    current_context: str | None
    contexts: dict[str, dict[str, Any]]
    clusters: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]


def _merge(paths: list[Path]) -> _Merged:
    """kubectl's merge rule: the first file to define a name wins. Relative file paths in
    an entry are relative to the file that defined it."""
    merged = _Merged(None, {}, {}, {})
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterError(f"cannot read kubeconfig {path}: {exc}") from None
        merged.current_context = merged.current_context or doc.get("current-context") or None
        for section, target in (
            ("contexts", merged.contexts),
            ("clusters", merged.clusters),
            ("users", merged.users),
        ):
            for item in doc.get(section) or []:
                body = dict(item.get(section[:-1]) or {})
                body["_dir"] = str(path.resolve().parent)
                target.setdefault(str(item.get("name")), body)
    return merged


def _file(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if not value:
        return None
    return str(Path(str(entry["_dir"]), os.path.expanduser(str(value))))


def _data(entry: Mapping[str, Any], key: str) -> bytes | None:
    value = entry.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        raise ClusterError(f"kubeconfig field {key} is not base64") from None


def _auth(cluster: Mapping[str, Any], user: Mapping[str, Any]) -> _Auth:
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ClusterError("the kubeconfig cluster has no server")
    user = dict(user)
    if user.get("exec"):
        user.update(_exec_credential(user["exec"], str(user["_dir"])))
    if user.get("auth-provider"):
        token = (user["auth-provider"].get("config") or {}).get("access-token")
        user.setdefault("token", token)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(_file(user, "tokenFile"))).read_text().strip()
    ctx: ssl.SSLContext | bool
    if cluster.get("insecure-skip-tls-verify"):
        ctx = False
    else:
        ca_data = _data(cluster, "certificate-authority-data")
        ctx = ssl.create_default_context(
            cafile=_file(cluster, "certificate-authority"),
            cadata=ca_data.decode() if ca_data else None,
        )
        _load_client_cert(ctx, user)
    return _Auth(
        server,
        ctx,
        str(token) if token else None,
        None,
        user.get("username"),
        user.get("password"),
    )


def _load_client_cert(ctx: ssl.SSLContext, user: Mapping[str, Any]) -> None:
    cert, key = _file(user, "client-certificate"), _file(user, "client-key")
    cert_data, key_data = _data(user, "client-certificate-data"), _data(user, "client-key-data")
    if not (cert or cert_data):
        return
    # The ssl module loads key material only from files: write the inline data to a
    # private directory just long enough for load_cert_chain, then remove it.
    with tempfile.TemporaryDirectory(prefix="kubectl-lark-") as tmp:
        if cert_data:
            cert = os.path.join(tmp, "client.crt")
            Path(cert).write_bytes(cert_data)
        if key_data:
            key = os.path.join(tmp, "client.key")
            Path(key).write_bytes(key_data)
        ctx.load_cert_chain(str(cert), key)


def _exec_credential(spec: Mapping[str, Any], base_dir: str) -> dict[str, Any]:
    """Run a client-go credential plugin (as EKS/GKE kubeconfigs use) once."""
    command = str(spec.get("command") or "")
    if not command:
        raise ClusterError("the kubeconfig user has an exec section without a command")
    if "/" in command and not os.path.isabs(command):
        command = os.path.join(base_dir, command)
    env = dict(os.environ)
    env.update({str(e["name"]): str(e["value"]) for e in spec.get("env") or []})
    api = spec.get("apiVersion", "client.authentication.k8s.io/v1")
    info = {"apiVersion": api, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    try:
        out = subprocess.run(
            [command, *[str(a) for a in spec.get("args") or []]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        status = json.loads(out).get("status") or {}
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ClusterError(f"kubeconfig exec plugin {command} failed: {exc}") from None
    found: dict[str, Any] = {}
    if status.get("token"):
        found["token"] = status["token"]
    for src, dst in (
        ("clientCertificateData", "client-certificate-data"),
        ("clientKeyData", "client-key-data"),
    ):
        if status.get(src):
            found[dst] = base64.b64encode(status[src].encode()).decode()
    return found


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
    spec = parse_spec(obj)
    base_url = resolve_base_url(spec.domain, allowed, allow_with=ALLOW_IN_CLI)
    ref = spec.app_secret_ref
    secret = await read_secret_value(kube, namespace, ref.name, ref.key, "spec.appSecretRef")
    return base_url, spec.app_id, secret, obj


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
    from lark_operator.probes.target import ProbeTarget

    async with session(conn) as kube:
        spec = parse_spec(await get_larkapp(kube, namespace, name))
        targets = []
        for dep in spec.probes.configured:
            if dependencies is not None and dep not in dependencies:
                continue
            cfg = getattr(spec.probes, dep)
            ref, field = (
                (cfg.dsn_secret_ref, "dsnSecretRef")
                if dep == "postgres"
                else (cfg.url_secret_ref, "urlSecretRef")
            )
            where = f"spec.probes.{dep}.{field}"
            url = await read_secret_value(kube, namespace, ref.name, ref.key, where)
            mgmt = None
            if dep == "rabbitmq" and cfg.management_url_secret_ref is not None:
                m = cfg.management_url_secret_ref
                mgmt = await read_secret_value(
                    kube, namespace, m.name, m.key, "spec.probes.rabbitmq.managementUrlSecretRef"
                )
            targets.append(ProbeTarget(dep, url, cfg, mgmt, spec.probes.timeout_seconds))
    return targets


def _kube_reason(exc: KubeError, what: str) -> str:
    if exc.status == 403:
        return f"reading {what} is forbidden for this user: {exc}"
    if exc.status == 401:
        return f"the apiserver did not accept the kubeconfig's credentials ({what})"
    return f"reading {what} failed: {exc}"
