"""kopf logs in through the operator's own credential loader, so that kopf's watches and
the operator's KubeClient talk to the same server as the same user, with the same rules
(kubeconfig as kubectl reads it, the pod's rotating service-account token, exec plugins).

app/handlers.py registers `login` as the `@kopf.on.login()` handler. kopf calls it again
after a 401 and when the credential it returned expires (an exec plugin's
expirationTimestamp); each call loads afresh. Here, not in `lark_operator.kube`, which
does not import kopf.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import kopf

from lark_operator.kube import Auth, AuthError, load_auth


def login(**_: Any) -> kopf.ConnectionInfo:
    """A kopf login handler (sync: kopf runs it in a thread; it may run a plugin)."""
    try:
        return connection_info(load_auth())
    except AuthError as exc:
        raise kopf.LoginError(str(exc)) from None


def connection_info(auth: Auth) -> kopf.ConnectionInfo:
    """`auth` as kopf's ConnectionInfo. The PEM material goes in base64 (kopf decodes
    that form whatever the PEM holds, e.g. a CA bundle starting with a comment); kopf
    builds its ssl context from it, its temporary files closed and removed at once."""
    credential = auth.credential
    if credential.due():
        credential.renew()
    # Only an exec credential's end is a hard one; a token file is re-read on kopf's next
    # login (after a 401), as kopf's own service-account login does.
    expires = credential.expires_at
    tls = auth.tls
    return kopf.ConnectionInfo(
        server=auth.server,
        ca_data=_b64(tls.ca),
        insecure=tls.insecure or None,
        certificate_data=_b64(tls.cert),
        private_key_data=_b64(tls.key),
        token=credential.token,
        username=None if credential.token else credential.username,
        password=None if credential.token else credential.password,
        default_namespace=auth.namespace,
        expiration=dt.datetime.fromtimestamp(expires, dt.UTC) if expires is not None else None,
    )


def _b64(pem: bytes | None) -> str | None:
    return base64.b64encode(pem).decode() if pem else None
