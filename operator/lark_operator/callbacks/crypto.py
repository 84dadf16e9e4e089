"""The platform's event encryption and signature, exactly as documented.

- body `{"encrypt": B}`, B = base64(iv || AES-256-CBC(plaintext, PKCS#7)), iv 16 random
  bytes, AES key = SHA-256(Encrypt Key) (32 bytes);
- X-Lark-Signature = hex(SHA-256(timestamp + nonce + encrypt_key + raw_body)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


class CipherError(ValueError):
    """Not a ciphertext this key opens (bad base64, length, padding). Says nothing more."""


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode()).digest()


def encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> str:
    iv = os.urandom(BLOCK) if iv is None else iv
    if len(iv) != BLOCK:
        raise ValueError("iv must be 16 bytes")
    padder = padding.PKCS7(BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode()


def decrypt(encrypt_key: str, b64: str) -> bytes:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise CipherError("not base64") from None
    if len(raw) < 2 * BLOCK or len(raw) % BLOCK:
        raise CipherError("not a whole number of AES blocks after the iv")
    dec = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(raw[:BLOCK])).decryptor()
    padded = dec.update(raw[BLOCK:]) + dec.finalize()
    unpadder = padding.PKCS7(BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CipherError("bad padding") from None


def sign(timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + raw_body).hexdigest()


def signature_matches(
    signature: str, timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes
) -> bool:
    expected = sign(timestamp, nonce, encrypt_key, raw_body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())
