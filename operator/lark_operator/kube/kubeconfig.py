"""kubeconfig files read as kubectl (client-go) reads them.

Several files merge with the first definition of a name winning (current-context too); a
file path in an entry is relative to the file that defined the entry; `*-data` fields
(base64) win over their file twins. A user authenticates with, in this order: an exec
plugin, `token`, `tokenFile` (re-read as it rotates), an auth-provider's access-token (an
oidc provider's id-token), `username`/`password`; and/or a client certificate.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lark_operator.kube.auth import Auth, AuthError, Clock, Credential, Tls, token_file
from lark_operator.kube.exec_plugin import Plugin


@dataclass(frozen=True)
class Entry:
    """A cluster, user or context body and the directory of the file that defined it."""

    body: Mapping[str, Any]
    base: Path

    def get(self, key: str) -> Any:
        return self.body.get(key)

    def path(self, key: str) -> Path | None:
        value = self.body.get(key)
        return self.base / Path(str(value)).expanduser() if value else None

    def material(self, key: str) -> bytes | None:
        """`key`-data decoded, else the file `key` names, else None."""
        data = self.body.get(f"{key}-data")
        if data:
            try:
                # Line breaks are allowed (as Go's decoder allows them), nothing else.
                return base64.b64decode("".join(str(data).split()), validate=True)
            except (binascii.Error, ValueError):
                raise AuthError(f"kubeconfig field {key}-data is not base64") from None
        path = self.path(key)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read {key} {path}: {exc.strerror}") from None


@dataclass
class Kubeconfig:
    current_context: str | None = None
    contexts: dict[str, Entry] = field(default_factory=dict)
    clusters: dict[str, Entry] = field(default_factory=dict)
    users: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def read(cls, paths: list[Path]) -> Kubeconfig:
        merged = cls()
        for path in paths:
            try:
                doc = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise AuthError(f"cannot read kubeconfig {path}: {exc}") from None
            if not isinstance(doc, dict):
                raise AuthError(f"kubeconfig {path} is not a kubeconfig")
            merged.current_context = merged.current_context or doc.get("current-context")
            base = path.resolve().parent
            for section, into in (
                ("contexts", merged.contexts),
                ("clusters", merged.clusters),
                ("users", merged.users),
            ):
                for item in doc.get(section) or []:
                    body = item.get(section[:-1]) or {}
                    into.setdefault(str(item.get("name")), Entry(body, base))
        return merged

    def auth(self, context: str | None = None, *, clock: Clock = time.time) -> Auth:
        """The Auth of `context` (default: current-context)."""
        name = context or self.current_context
        if not name:
            raise AuthError("the kubeconfig names no current-context: pass --context")
        ctx = self.contexts.get(name)
        if ctx is None:
            raise AuthError(f"context {name!r} is not in the kubeconfig")
        cluster = self.clusters.get(str(ctx.get("cluster")))
        if cluster is None:
            raise AuthError(f"context {name!r} names cluster {ctx.get('cluster')!r}, not defined")
        user = self.users.get(str(ctx.get("user")), Entry({}, cluster.base))
        server = str(cluster.get("server") or "")
        if not server:
            raise AuthError(f"cluster {ctx.get('cluster')!r} in the kubeconfig has no server")
        ca = cluster.material("certificate-authority")
        insecure = bool(cluster.get("insecure-skip-tls-verify"))
        cert, key = user.material("client-certificate"), user.material("client-key")
        credential = Credential(clock=clock)
        if user.get("exec"):
            cluster_info = {
                "server": server,
                "insecure-skip-tls-verify": insecure,
                **({"certificate-authority-data": base64.b64encode(ca).decode()} if ca else {}),
            }
            plugin = Plugin.from_kubeconfig(user.get("exec"), user.base, cluster_info)
            first = plugin.run()
            cert, key = cert or first.cert, key or first.key
            if first.token:
                credential = Credential(
                    first.token,
                    renew=plugin.renewal,
                    refresh_at=first.expires_at,
                    expires_at=first.expires_at,
                    clock=clock,
                )
        elif user.get("token"):
            credential = Credential(str(user.get("token")), clock=clock)
        elif path := user.path("tokenFile"):
            credential = Credential.renewing(token_file(path), clock)
        elif provider := user.get("auth-provider"):
            config = provider.get("config") or {}
            token = config.get("access-token") or (
                config.get("id-token") if provider.get("name") == "oidc" else None
            )
            credential = Credential(str(token) if token else None, clock=clock)
        elif user.get("username"):
            credential = Credential(
                username=str(user.get("username")),
                password=str(user.get("password") or ""),
                clock=clock,
            )
        if bool(cert) != bool(key):
            raise AuthError("the kubeconfig user has a client certificate or key without the other")
        return Auth(
            server,
            Tls(ca, cert, key, insecure),
            credential,
            namespace=str(ctx.get("namespace") or "default"),
            context=name,
        )
