"""The Open Platform's event callbacks (webhook mode), pure: the documented encryption and
signature (crypto.py), turning one HTTP request into a verified event or a refusal
(envelope.py), and the replay guard (replay.py). Both the operator's events endpoint and
the emulator's pushes use it; neither I/O nor Kubernetes is known here.

Facts (shared/lark-open-api.md, "Event callbacks"): with an Encrypt Key every body is
{"encrypt": base64(iv || AES-256-CBC(JSON, PKCS#7))}, key = SHA-256(Encrypt Key);
X-Lark-Signature = hex(SHA-256(timestamp + nonce + encrypt_key + raw_body)); the payload's
`token` (header.token in the 2.0 schema) is the app's Verification Token.
"""

from lark_operator.callbacks.crypto import CipherError, decrypt, encrypt, sign
from lark_operator.callbacks.envelope import (
    EVENT_TYPES,
    REJECTION_REASONS,
    AppKeys,
    Event,
    Rejected,
    open_event,
)
from lark_operator.callbacks.replay import ReplayGuard
from lark_operator.callbacks.seal import event_payload, seal

__all__ = [
    "EVENT_TYPES",
    "REJECTION_REASONS",
    "AppKeys",
    "CipherError",
    "Event",
    "Rejected",
    "ReplayGuard",
    "decrypt",
    "encrypt",
    "event_payload",
    "open_event",
    "seal",
    "sign",
]
