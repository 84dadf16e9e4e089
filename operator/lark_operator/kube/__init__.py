"""The Kubernetes side: a thin aiohttp client (`client`), the part of it the reconciler and
the token store use as a protocol (`api.KubeAPI`, which test fakes implement too), what the
apiserver's refusals mean (`errors`), and the one credential loader of the operator and the
CLI (`loader`, reading kubeconfig files through `kubeconfig`, exec plugins through
`exec_plugin`, into an `auth.Auth`)."""

from lark_operator.kube.api import KubeAPI
from lark_operator.kube.auth import Auth, AuthError
from lark_operator.kube.client import KubeClient
from lark_operator.kube.errors import Conflict, Gone, KubeError
from lark_operator.kube.loader import load_auth

__all__ = [
    "Auth",
    "AuthError",
    "Conflict",
    "Gone",
    "KubeAPI",
    "KubeClient",
    "KubeError",
    "load_auth",
]
