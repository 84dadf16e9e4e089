"""The Open Platform client: error taxonomy, backoff, rate limit, single-flight, token cache.

Knows nothing of Kubernetes; the controller and the CLI both use it. Import from here:
the modules behind these names (client, cache, transport, answer, redact, ...) may move.
"""

from lark_operator.openplatform.api import BotInfoSource, PlatformAPI, StoreSource, TokenSource
from lark_operator.openplatform.backoff import backoff_delay
from lark_operator.openplatform.client import BOT_INFO_PATH, OpenPlatformClient
from lark_operator.openplatform.errors import (
    Classification,
    ErrorKind,
    OpenPlatformError,
    classify,
)
from lark_operator.openplatform.token import TOKEN_PATHS, Token

__all__ = [
    "BOT_INFO_PATH",
    "TOKEN_PATHS",
    "BotInfoSource",
    "Classification",
    "ErrorKind",
    "OpenPlatformClient",
    "OpenPlatformError",
    "PlatformAPI",
    "StoreSource",
    "Token",
    "TokenSource",
    "backoff_delay",
    "classify",
]
