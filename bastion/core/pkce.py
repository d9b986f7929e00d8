"""PKCE (RFC 7636), S256 only: `plain` exposes the verifier and is refused (RFC 9700 §2.1.1)."""

from __future__ import annotations

import hashlib
import re

from .errors import InvalidGrant, InvalidRequest
from .secrets import b64url, constant_time_equal

__all__ = ["check_code_challenge", "s256", "verify_pkce"]

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is the base64url (no padding) of a SHA-256 digest: exactly 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_code_challenge(challenge: str | None, method: str | None) -> str:
    """Validate the authorization request's challenge; every client must send one (OAuth 2.1 §4.1.1)."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    # RFC 7636 §4.3: an absent method means "plain", which we do not accept.
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge is not a valid S256 challenge")
    return challenge


def verify_pkce(verifier: str | None, challenge: str) -> None:
    if not verifier:
        raise InvalidGrant("code_verifier is required")
    if not _VERIFIER.fullmatch(verifier):
        raise InvalidGrant("code_verifier is malformed")
    if not constant_time_equal(s256(verifier), challenge):
        raise InvalidGrant("PKCE verification failed")
