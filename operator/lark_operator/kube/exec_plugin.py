"""client-go credential plugins (a kubeconfig user's `exec:`, as EKS, GKE, AKS and
Pinniped kubeconfigs use): run the command, read the ExecCredential it prints.

The plugin runs non-interactively (stdin is /dev/null); what it prints on stderr goes to
ours, as kubectl lets it. Its answer may carry an expirationTimestamp: the credential is
renewed by running the plugin again at that time (and after a 401).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark_operator.kube.auth import AuthError, Renewal

DEFAULT_API_VERSION = "client.authentication.k8s.io/v1"
TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ExecCredential:
    token: str | None = field(repr=False)
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    expires_at: float | None = None  # seconds since the epoch


@dataclass(frozen=True)
class Plugin:
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    api_version: str = DEFAULT_API_VERSION
    install_hint: str = ""
    # What `provideClusterInfo: true` hands the plugin (spec.cluster of the request).
    cluster: Mapping[str, Any] | None = None

    @classmethod
    def from_kubeconfig(
        cls, spec: Mapping[str, Any], base_dir: Path, cluster: Mapping[str, Any]
    ) -> Plugin:
        """The `exec` section of a kubeconfig user; a command given as a relative path is
        relative to the kubeconfig file that defined it (a bare name is looked up on PATH).
        `cluster` is spec.cluster for a plugin that asks for it (provideClusterInfo)."""
        command = str(spec.get("command") or "")
        if not command:
            raise AuthError("the kubeconfig user has an exec section without a command")
        if os.sep in command and not os.path.isabs(command):
            command = str(base_dir / command)
        return cls(
            command,
            tuple(str(a) for a in spec.get("args") or ()),
            {str(e["name"]): str(e["value"]) for e in spec.get("env") or ()},
            str(spec.get("apiVersion") or DEFAULT_API_VERSION),
            str(spec.get("installHint") or ""),
            cluster if spec.get("provideClusterInfo") else None,
        )

    def run(self) -> ExecCredential:
        request: dict[str, Any] = {"interactive": False}
        if self.cluster is not None:
            request["cluster"] = self.cluster
        env = {
            **os.environ,
            **self.env,
            "KUBERNETES_EXEC_INFO": json.dumps(
                {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": request}
            ),
        }
        try:
            out = subprocess.run(
                [self.command, *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=True,
            ).stdout
        except FileNotFoundError:
            hint = f": {self.install_hint}" if self.install_hint else ""
            raise AuthError(f"kubeconfig exec plugin {self.command} not found{hint}") from None
        except (OSError, subprocess.SubprocessError) as exc:
            # CalledProcessError's text names the command and exit status, not the output.
            raise AuthError(f"kubeconfig exec plugin {self.command} failed: {exc}") from None
        return self._parse(out)

    def renewal(self, now: float) -> Renewal:
        """For Credential.renewing: a token, due again when it expires."""
        cred = self.run()
        if not cred.token:
            raise AuthError(f"kubeconfig exec plugin {self.command} returned no token")
        return Renewal(cred.token, cred.expires_at, cred.expires_at)

    def _parse(self, out: str) -> ExecCredential:
        def bad(why: str) -> AuthError:
            return AuthError(f"kubeconfig exec plugin {self.command} answered {why}")

        try:
            doc = json.loads(out)
        except ValueError:
            raise bad("something that is not JSON") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise bad("something that is not an ExecCredential")
        status = doc.get("status")
        if not isinstance(status, dict):
            raise bad("an ExecCredential without a status")
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if not status.get("token") and not (cert and key):
            raise bad("neither a token nor a client certificate and key")
        expires_at = None
        if status.get("expirationTimestamp"):
            try:
                when = dt.datetime.fromisoformat(str(status["expirationTimestamp"]))
            except ValueError:
                raise bad("an expirationTimestamp that is not RFC 3339") from None
            expires_at = when.replace(tzinfo=when.tzinfo or dt.UTC).timestamp()
        return ExecCredential(
            str(status["token"]) if status.get("token") else None,
            str(cert).encode() if cert else None,
            str(key).encode() if key else None,
            expires_at,
        )
