"""The one way the operator and the CLI find their Kubernetes credentials.

controller-runtime's order: --kubeconfig, else the files in $KUBECONFIG, else the pod's
service account, else ~/.kube/config. kubectl's reading of kubeconfig files is in
`kubeconfig`; the service account is here.
"""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

from lark_operator.kube.auth import Auth, AuthError, Clock, Credential, Tls, token_file
from lark_operator.kube.kubeconfig import Kubeconfig

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
HOME_KUBECONFIG = "~/.kube/config"


def load_auth(
    kubeconfig: str | None = None, context: str | None = None, *, clock: Clock = time.time
) -> Auth:
    """Where and as whom to talk (AuthError names what is missing or wrong)."""
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise AuthError(f"kubeconfig {kubeconfig} does not exist")
        return Kubeconfig.read([path]).auth(context, clock=clock)
    listed = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p.strip()]
    existing = [p for p in paths if p.is_file()]
    if existing:
        return Kubeconfig.read(existing).auth(context, clock=clock)
    pod = in_cluster(clock=clock)
    if pod is not None:
        if context:
            raise AuthError(f"context {context!r}: no kubeconfig here, only the service account")
        return pod
    home = Path(HOME_KUBECONFIG).expanduser()
    if not paths and home.is_file():
        return Kubeconfig.read([home]).auth(context, clock=clock)
    raise AuthError(
        "no kubeconfig ($KUBECONFIG, ~/.kube/config) and no service account: "
        "set KUBECONFIG or pass --kubeconfig"
    )


def in_cluster(sa_dir: Path | None = None, *, clock: Clock = time.time) -> Auth | None:
    """The pod's service account (as client-go's InClusterConfig), or None outside a
    pod. The token is re-read as kubelet rotates it."""
    sa_dir = sa_dir or SERVICE_ACCOUNT_DIR
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token = sa_dir / "token"
    if not host or not token.exists():
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if _is_ipv6(host):
        host = f"[{host}]"
    namespace = (_optional(sa_dir / "namespace") or b"").decode().strip()
    return Auth(
        f"https://{host}:{port}",
        Tls(ca=_optional(sa_dir / "ca.crt")),
        Credential.renewing(token_file(token), clock),
        namespace=namespace or "default",
    )


def _optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read {path}: {exc.strerror}") from None


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
