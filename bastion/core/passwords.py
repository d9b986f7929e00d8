"""User passwords: argon2id (RFC 9106), with a dummy verification for unknown users.

The dummy check makes a wrong username cost the same time as a wrong password, so response
timing does not reveal which usernames exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "verify_password"]

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash("bastion-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
