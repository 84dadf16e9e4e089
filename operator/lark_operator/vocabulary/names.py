"""The Kubernetes names the operator owns: API group, kinds, labels, annotations (spelled
out whole, so that a grep for one finds its definition)."""

from __future__ import annotations

GROUP = "larkservice.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "larkapps"
KIND = "LarkApp"
CLUSTER_PLURAL = "clusterlarkapps"
CLUSTER_KIND = "ClusterLarkApp"
FINALIZER = "larkservice.io/finalizer"

# `kubectl lark refresh` sets the first; the operator records the value it acted on in the
# second (so a request made while it was down is not lost).
REFRESH_ANNOTATION = "larkservice.io/refresh-requested-at"
REFRESH_HANDLED_ANNOTATION = "larkservice.io/refresh-handled-at"

# On token Secrets.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "lark-operator"
LARKAPP_LABEL = "larkservice.io/larkapp"
FULL_NAME_ANNOTATION = "larkservice.io/larkapp-name"  # the LarkApp's name when the label is hashed
BASE_URL_ANNOTATION = "larkservice.io/base-url"  # the platform that issued the tokens
# "true" on a token Secret shaped by target.template: its data is exactly the template's keys.
TEMPLATED_ANNOTATION = "larkservice.io/templated"
ADOPT_ANNOTATION = "larkservice.io/adopt"  # consent by a Secret's owner to be taken over

# On the pod template of a workload in target.rolloutRestart: the fingerprint of the token
# it was last rolled for (a change rolls it; the same value is never set twice).
TOKEN_FINGERPRINT_ANNOTATION = "larkservice.io/token-fingerprint"


# Per token type, so that a restarted operator knows each expiry without the data.
EXPIRES_ANNOTATIONS = {
    "tenant": "larkservice.io/tenant-expires-at",
    "app": "larkservice.io/app-expires-at",
}


def expires_annotation(token_type: str) -> str:
    return EXPIRES_ANNOTATIONS[token_type]


# On a store app's ticket Secret (in the cluster resource namespace): which app it is for,
# and when its app_ticket arrived.
STORE_APP_LABEL = "larkservice.io/store-app"
TICKET_RECEIVED_ANNOTATION = "larkservice.io/ticket-received-at"
