"""lark-operator: Feishu / Lark Open Platform apps on Kubernetes."""

__version__ = "0.1.0"

GROUP = "larkservice.io"
VERSION = "v1alpha1"
PLURAL = "larkapps"
KIND = "LarkApp"
FINALIZER = "larkservice.io/finalizer"
REFRESH_ANNOTATION = "larkservice.io/refresh-requested-at"
REFRESH_HANDLED_ANNOTATION = "larkservice.io/refresh-handled-at"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "lark-operator"
LARKAPP_LABEL = "larkservice.io/larkapp"
