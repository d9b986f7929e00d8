"""Signing keys: generation, encryption at rest, and the per-process key set.

Private keys are stored as PKCS#8 encrypted with AES-256-GCM under a key derived (HKDF) from the
operator's key-encryption secret; the kid and alg are bound in as associated data so a ciphertext
cannot be moved to another key's row. Keys are decrypted once per process into a `KeySet`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .jose import ALGORITHMS, PrivateKey, PublicKey, public_jwk
from .secrets import new_secret

__all__ = [
    "KeyEncryptor",
    "KeySet",
    "SigningKey",
    "StoredKey",
    "derive_secret",
    "generate_signing_key",
]


def derive_secret(master: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose (key encryption, CSRF, ...), so one secret never serves two."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion:" + purpose.encode())
    return hkdf.derive(master.encode())


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the store keeps it: the private part only in encrypted form."""

    kid: str
    alg: str
    encrypted_private_key: bytes
    created_at: datetime
    retire_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey
    created_at: datetime
    retire_at: datetime | None = None

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()


def _associated_data(kid: str, alg: str) -> bytes:
    # Binds the ciphertext to its row: moved to another kid or relabelled to another alg, it fails.
    return f"{kid}\x00{alg}".encode()


class KeyEncryptor:
    _VERSION = b"\x01"

    def __init__(self, master_secret: str) -> None:
        self._aead = AESGCM(derive_secret(master_secret, "key-encryption"))

    def encrypt(self, key: SigningKey) -> StoredKey:
        der = key.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = os.urandom(12)
        blob = self._VERSION + nonce + self._aead.encrypt(nonce, der, _associated_data(key.kid, key.alg))
        return StoredKey(key.kid, key.alg, blob, key.created_at, key.retire_at)

    def decrypt(self, stored: StoredKey) -> SigningKey:
        blob = stored.encrypted_private_key
        if blob[:1] != self._VERSION:
            raise ValueError(f"key {stored.kid}: unknown encryption version")
        der = self._aead.decrypt(blob[1:13], blob[13:], _associated_data(stored.kid, stored.alg))
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError(f"key {stored.kid}: unsupported key type")
        return SigningKey(stored.kid, stored.alg, private, stored.created_at, stored.retire_at)


def generate_signing_key(alg: str, now: datetime) -> SigningKey:
    private: PrivateKey
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {alg}")
    return SigningKey(kid=new_secret(12), alg=alg, private_key=private, created_at=now)


@dataclass
class KeySet:
    """The keys one process signs and verifies with; built once, read on every request."""

    keys: list[SigningKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._signing: dict[str, SigningKey] = {}
        # Newest unretired key of each algorithm signs; every key still listed verifies.
        for key in sorted(self.keys, key=lambda k: k.created_at):
            if key.retire_at is None:
                self._signing[key.alg] = key
        self.verification_keys: dict[str, tuple[str, PublicKey]] = {
            k.kid: (k.alg, k.public_key) for k in self.keys
        }
        self.jwks: dict[str, Any] = {"keys": [public_jwk(k.public_key, k.kid, k.alg) for k in self.keys]}

    def signing_key(self, alg: str) -> SigningKey:
        try:
            return self._signing[alg]
        except KeyError:
            raise LookupError(f"no active signing key for {alg}") from None

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in ALGORITHMS if a in self._signing)

    def missing_algorithms(self, wanted: Iterable[str] = ALGORITHMS) -> list[str]:
        return [a for a in wanted if a not in self._signing]
