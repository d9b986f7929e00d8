"""Random tokens, their storage hashes, and constant-time comparison.

Codes, refresh tokens, device codes and client secrets carry 256 bits of randomness, so an unsalted
SHA-256 is the right storage hash for them: nothing to brute-force, and cheap on the token path.
User passwords are a different matter and use argon2id (`bastion.core.passwords`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["b64url", "constant_time_equal", "hash_secret", "new_secret"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` of entropy (256 bits by default)."""
    return b64url(secrets.token_bytes(nbytes))


def hash_secret(value: str) -> str:
    """The form in which a high-entropy secret is stored and looked up."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
