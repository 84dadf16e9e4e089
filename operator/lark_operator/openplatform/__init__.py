"""The Open Platform client: error taxonomy, backoff, rate limit, single-flight, token cache.

Knows nothing of Kubernetes; the controller and the CLI both use it.
"""

from lark_operator.openplatform.backoff import backoff_delay
from lark_operator.openplatform.client import (
    BOT_INFO_PATH,
    TOKEN_PATHS,
    OpenPlatformClient,
    Token,
)
from lark_operator.openplatform.errors import (
    Classification,
    ErrorKind,
    OpenPlatformError,
    classify,
)

__all__ = [
    "BOT_INFO_PATH",
    "TOKEN_PATHS",
    "Classification",
    "ErrorKind",
    "OpenPlatformClient",
    "OpenPlatformError",
    "Token",
    "backoff_delay",
    "classify",
]
