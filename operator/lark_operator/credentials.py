"""The one credential path of the operator and of every CLI command: how a value is read
from a Secret and normalised, and which base URL a domain may send an App Secret to.

The operator and the CLI must never disagree on the same LarkApp: a value with a trailing
newline is valid for both, an empty or binary one is refused by both with the same reason,
and no command sends an App Secret to a URL the operator would refuse. Probe DSNs/URLs are
read the same way. Errors carry a reason from the condition vocabulary and a message that
names Secrets, keys and URLs, never a value.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from typing import Any

from lark_operator.vocabulary.domains import BASE_URLS, is_base_url, metadata_address

ALLOWED_BASE_URLS_ENV = "LARK_OPERATOR_ALLOWED_BASE_URLS"
# How a person allows a URL, per caller ({url}: the refused URL).
ALLOW_IN_OPERATOR = "the operator's --allowed-base-url (Helm value allowedBaseUrls)"
ALLOW_IN_CLI = f"--allowed-base-url {{url}} (or {ALLOWED_BASE_URLS_ENV}={{url}})"
# Where clouds serve instance metadata (and credentials): an App Secret sent there is one
# step from the node's own cloud credentials, so no message ever suggests allowing these.


class CredentialError(Exception):
    """A credential that must not be used: `reason` is a condition reason, `message` names
    the Secret, key or URL and why (never a value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


# --- Secret values -----------------------------------------------------------------------------
def _text(raw: Any) -> tuple[str | None, int | None]:
    """(the value as stripped text, or None when absent/empty/blank/not text;
    its size in bytes when it is not UTF-8 text)."""
    if not raw:
        return None, None
    try:
        data = base64.b64decode(raw)
    except (binascii.Error, ValueError, TypeError):
        return None, None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None, len(data)
    return normalise_text(text), None


def normalise_text(text: str) -> str | None:
    """A credential as typed or stored, stripped; None when nothing is left. An App Secret,
    DSN or URL never has surrounding whitespace: a newline from `echo ... | kubectl create
    secret --from-file`, a CR LF or a pasted space is a mistake to forgive, not a secret."""
    return text.strip() or None


def decode_value(raw: Any) -> str | None:
    """A Secret `data` value (base64) as stripped text; None when absent, empty, blank or
    not UTF-8 text."""
    return _text(raw)[0]


def binary_size(raw: Any) -> int | None:
    """Size of a Secret `data` value that is not UTF-8 text (None: text, empty or absent)."""
    return _text(raw)[1]


def secret_value(
    secret: Mapping[str, Any] | None,
    name: str,
    key: str,
    *,
    namespace: str,
    field: str | None = None,
) -> str:
    """The normalised text under `key` of a Secret as the apiserver returns it (None: the
    Secret does not exist). `field` names the spec field that points here, for the message.
    Raises CredentialError: SecretNotFound, SecretKeyMissing (absent, empty or blank; the
    message lists the keys present), InvalidCredentials (not UTF-8 text)."""
    where = f"Secret {name}" + (f" ({field})" if field else "")
    if secret is None:
        raise CredentialError("SecretNotFound", f"{where} not found in namespace {namespace}.")
    data = secret.get("data") or {}
    value, size = _text(data.get(key))
    if size is not None:
        # A file (a key, a certificate) stored under the wrong key: never sent anywhere.
        raise CredentialError(
            "InvalidCredentials",
            f"{where} key {key!r} holds {size} bytes that are not UTF-8 text.",
        )
    if value is None:
        keys = ", ".join(sorted(data)) or "none"
        raise CredentialError(
            "SecretKeyMissing",
            f"{where} has no non-empty key {key!r} (keys present: {keys}).",
        )
    return value


# --- where an App Secret may go ------------------------------------------------------------
def allowed_base_urls(
    flags: Iterable[str] | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The allowlist as the operator builds it: the --allowed-base-url values when any are
    given, else the comma-separated LARK_OPERATOR_ALLOWED_BASE_URLS."""
    given = [u.strip() for u in flags or () if u.strip()]
    if given:
        return given
    raw = (os.environ if env is None else env).get(ALLOWED_BASE_URLS_ENV, "")
    return [u.strip() for u in raw.split(",") if u.strip()]


def normalized_allowed(urls: Iterable[str]) -> set[str]:
    """The allowlist as compared: a trailing slash does not matter."""
    return {u.strip().rstrip("/") for u in urls if u.strip()}


def resolve_base_url(
    domain: str,
    allowed: Iterable[str],
    *,
    field: str = "spec.domain",
    allow_with: str = ALLOW_IN_OPERATOR,
) -> str:
    """`feishu` / `lark` -> their base URL; any other value must be an http(s) URL in
    `allowed` (trailing slash ignored). Otherwise CredentialError DomainNotAllowed, whose
    message names the URL and how to allow it (`allow_with`, `{url}` filled in)."""
    if domain in BASE_URLS:
        return BASE_URLS[domain]
    url = domain.rstrip("/")
    if not is_base_url(url):
        raise CredentialError(
            "DomainNotAllowed",
            f"{field} {domain!r} is not 'feishu', 'lark' or an http(s) base URL.",
        )
    metadata = metadata_address(url)
    if metadata is not None:  # whatever the allowlist says
        raise CredentialError(
            "DomainNotAllowed",
            f"{field} {url} is refused as {metadata}: an App Secret is never sent there. "
            "Use 'feishu' / 'lark', or the base URL of your Open Platform.",
        )
    if url not in normalized_allowed(allowed):
        raise CredentialError(
            "DomainNotAllowed",
            f"{field} {url} is not an allowed base URL: allow it with "
            f"{allow_with.format(url=url)}, or use 'feishu' / 'lark'.",
        )
    return url
