"""Signing keys: generation, AES-GCM encryption at rest (kid bound as AAD), and the KeySet."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bastion.core import jose
from bastion.core.keys import KeyEncryptor, KeySet, SigningKey, StoredKey, derive_secret, generate_signing_key
from bastion.core.secrets import b64url

ALL = ("RS256", "ES256", "EdDSA")
MASTER = "master-secret-" + "m" * 40
NOW = datetime(2025, 1, 1, tzinfo=UTC)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(scope="module")
def generated() -> dict[str, SigningKey]:
    return {alg: generate_signing_key(alg, NOW) for alg in ALL}


def _private_encodings(key: jose.PrivateKey) -> dict[str, bytes]:
    """Every form in which the private key could leak into a stored blob."""
    enc, fmt, none = serialization.Encoding, serialization.PrivateFormat, serialization.NoEncryption()
    forms = {
        "der-pkcs8": key.private_bytes(enc.DER, fmt.PKCS8, none),
        "pem-pkcs8": key.private_bytes(enc.PEM, fmt.PKCS8, none),
    }
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        forms["der-traditional"] = key.private_bytes(enc.DER, fmt.TraditionalOpenSSL, none)
        forms["pem-traditional"] = key.private_bytes(enc.PEM, fmt.TraditionalOpenSSL, none)
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        for name in ("d", "p", "q"):
            value: int = getattr(numbers, name)
            forms[f"rsa-{name}"] = value.to_bytes((value.bit_length() + 7) // 8, "big")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        forms["ec-scalar"] = key.private_numbers().private_value.to_bytes(32, "big")
    else:
        forms["ed25519-seed"] = key.private_bytes(enc.Raw, fmt.Raw, none)
    return forms


def _signs_and_verifies(signer: SigningKey, verifier_public: jose.PublicKey) -> None:
    token = jose.sign({"sub": "x"}, signer.private_key, signer.alg, signer.kid)
    assert jose.verify(token, {signer.kid: (signer.alg, verifier_public)}, [signer.alg]).claims == {"sub": "x"}


# --- generation -------------------------------------------------------------------------------


def test_generated_key_types(generated: dict[str, SigningKey]) -> None:
    rsa_key = generated["RS256"].private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size >= 2048
    assert rsa_key.private_numbers().public_numbers.e == 65537
    ec_key = generated["ES256"].private_key
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and isinstance(ec_key.curve, ec.SECP256R1)
    assert isinstance(generated["EdDSA"].private_key, ed25519.Ed25519PrivateKey)


def test_every_generated_rsa_key_is_at_least_2048_bits() -> None:
    for _ in range(3):
        key = generate_signing_key("RS256", NOW).private_key
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048


@pytest.mark.parametrize("alg", ALL)
def test_generated_key_metadata(alg: str, generated: dict[str, SigningKey]) -> None:
    key = generated[alg]
    assert key.alg == alg and key.created_at == NOW and key.retire_at is None
    assert isinstance(key.kid, str) and len(key.kid) >= 16
    assert not {"=", "+", "/", "."} & set(key.kid)
    _signs_and_verifies(key, key.public_key)


def test_generated_kids_are_unique() -> None:
    kids = {generate_signing_key("EdDSA", NOW).kid for _ in range(200)}
    assert len(kids) == 200


@pytest.mark.parametrize("alg", ["HS256", "none", "RS512", "ES384", "rs256", ""])
def test_generate_unsupported_algorithm(alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        generate_signing_key(alg, NOW)


def test_derive_secret_separates_purposes() -> None:
    a, b = derive_secret(MASTER, "key-encryption"), derive_secret(MASTER, "csrf")
    assert len(a) == len(b) == 32 and a != b
    assert derive_secret(MASTER, "csrf") == b
    assert derive_secret(MASTER + "x", "csrf") != b
    assert MASTER.encode() not in a + b


# --- encryption at rest -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL)
def test_encrypt_decrypt_round_trip(alg: str, generated: dict[str, SigningKey]) -> None:
    original = dataclasses.replace(generated[alg], retire_at=NOW + timedelta(days=7))
    encryptor = KeyEncryptor(MASTER)
    stored = encryptor.encrypt(original)
    assert isinstance(stored, StoredKey)
    assert (stored.kid, stored.alg, stored.created_at, stored.retire_at) == (
        original.kid, original.alg, original.created_at, original.retire_at)
    # A fresh encryptor from the same secret (another process) decrypts it.
    restored = KeyEncryptor(MASTER).decrypt(stored)
    assert (restored.kid, restored.alg, restored.created_at, restored.retire_at) == (
        original.kid, original.alg, original.created_at, original.retire_at)
    assert type(restored.private_key) is type(original.private_key)
    # Signed by the restored key, verified with the original public key; and the other way round.
    _signs_and_verifies(restored, original.public_key)
    _signs_and_verifies(original, restored.public_key)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert restored.public_key.public_bytes(*raw) == original.public_key.public_bytes(*raw)


@pytest.mark.parametrize("alg", ALL)
def test_each_encryption_uses_a_fresh_nonce(alg: str, generated: dict[str, SigningKey]) -> None:
    encryptor = KeyEncryptor(MASTER)
    blobs = {encryptor.encrypt(generated[alg]).encrypted_private_key for _ in range(5)}
    assert len(blobs) == 5
    assert len({blob[1:13] for blob in blobs}) == 5  # version byte, then the 96-bit nonce


@pytest.mark.parametrize("alg", ALL)
def test_different_master_secret_cannot_decrypt(alg: str, generated: dict[str, SigningKey]) -> None:
    stored = KeyEncryptor(MASTER).encrypt(generated[alg])
    for other in [MASTER + "x", MASTER[:-1], MASTER.upper(), "", "k" * 48]:
        with pytest.raises(InvalidTag):
            KeyEncryptor(other).decrypt(stored)


@pytest.mark.parametrize("alg", ALL)
def test_ciphertext_moved_to_another_kid_cannot_decrypt(alg: str, generated: dict[str, SigningKey]) -> None:
    encryptor = KeyEncryptor(MASTER)
    stored = encryptor.encrypt(generated[alg])
    for kid in ["other-kid", stored.kid + "x", stored.kid[:-1], stored.kid.upper(), ""]:
        if kid == stored.kid:
            continue
        with pytest.raises(InvalidTag):
            encryptor.decrypt(dataclasses.replace(stored, kid=kid))


def test_ciphertexts_swapped_between_two_rows(generated: dict[str, SigningKey]) -> None:
    """An attacker with write access to the key table swaps blobs to make us sign with another key."""
    encryptor = KeyEncryptor(MASTER)
    first, second = encryptor.encrypt(generated["ES256"]), encryptor.encrypt(generated["RS256"])
    same_alg = encryptor.encrypt(generate_signing_key("ES256", NOW))
    for target, source in [(first, second), (second, first), (first, same_alg), (same_alg, first)]:
        with pytest.raises(InvalidTag):
            encryptor.decrypt(dataclasses.replace(target, encrypted_private_key=source.encrypted_private_key))


@pytest.mark.parametrize("position", [1, 6, 12, 13, 40, -17, -1])
def test_tampered_blob_cannot_decrypt(position: int, generated: dict[str, SigningKey]) -> None:
    encryptor = KeyEncryptor(MASTER)
    stored = encryptor.encrypt(generated["EdDSA"])
    blob = bytearray(stored.encrypted_private_key)
    blob[position] ^= 0x01
    with pytest.raises(InvalidTag):
        encryptor.decrypt(dataclasses.replace(stored, encrypted_private_key=bytes(blob)))


@pytest.mark.parametrize("cut", [0, 1, 13, 28])
def test_truncated_blob_cannot_decrypt(cut: int, generated: dict[str, SigningKey]) -> None:
    encryptor = KeyEncryptor(MASTER)
    stored = encryptor.encrypt(generated["EdDSA"])
    with pytest.raises((InvalidTag, ValueError)):
        encryptor.decrypt(dataclasses.replace(stored, encrypted_private_key=stored.encrypted_private_key[:cut]))


@pytest.mark.parametrize("version", [b"\x00", b"\x02", b"\xff"])
def test_unknown_encryption_version(version: bytes, generated: dict[str, SigningKey]) -> None:
    encryptor = KeyEncryptor(MASTER)
    stored = encryptor.encrypt(generated["EdDSA"])
    blob = version + stored.encrypted_private_key[1:]
    with pytest.raises(ValueError, match="unknown encryption version"):
        encryptor.decrypt(dataclasses.replace(stored, encrypted_private_key=blob))


@pytest.mark.parametrize("alg", ALL)
def test_stored_blob_holds_no_private_key_material(alg: str, generated: dict[str, SigningKey]) -> None:
    stored = KeyEncryptor(MASTER).encrypt(generated[alg])
    blob = stored.encrypted_private_key
    for name, secret in _private_encodings(generated[alg].private_key).items():
        assert secret not in blob, name
    assert b"PRIVATE KEY" not in blob
    assert MASTER.encode() not in blob
    assert derive_secret(MASTER, "key-encryption") not in blob
    # Nothing private in the rest of the row either.
    row = repr(stored).encode()
    for name, secret in _private_encodings(generated[alg].private_key).items():
        if len(secret) >= 16:
            assert secret not in row, name


# --- KeySet -----------------------------------------------------------------------------------


def _key(alg: str, kid: str, days: int, retiring: bool = False) -> SigningKey:
    key = generate_signing_key(alg, NOW + timedelta(days=days))
    return dataclasses.replace(key, kid=kid, retire_at=NOW + timedelta(days=days + 30) if retiring else None)


@pytest.fixture(scope="module")
def rotation() -> list[SigningKey]:
    """Per algorithm: an old active key, a newer active key, and a newest key already retiring."""
    return [
        _key("RS256", "rs-old", 0),
        _key("RS256", "rs-new", 10),
        _key("RS256", "rs-retiring-newest", 20, retiring=True),
        _key("ES256", "es-old", 1),
        _key("ES256", "es-new", 11),
        _key("ES256", "es-retiring", 5, retiring=True),
        _key("EdDSA", "ed-only", 2),
        _key("EdDSA", "ed-retiring-newest", 30, retiring=True),
    ]


def test_keyset_signs_with_newest_unretired_key_of_each_alg(rotation: list[SigningKey]) -> None:
    shuffled = list(rotation)
    for seed in range(5):  # the input order must not matter
        random.Random(seed).shuffle(shuffled)
        keyset = KeySet(shuffled)
        assert keyset.signing_key("RS256").kid == "rs-new"
        assert keyset.signing_key("ES256").kid == "es-new"
        assert keyset.signing_key("EdDSA").kid == "ed-only"
        assert keyset.algorithms == ALL
        assert keyset.missing_algorithms() == []


def test_keyset_verification_keys_include_retiring(rotation: list[SigningKey]) -> None:
    keyset = KeySet(rotation)
    assert set(keyset.verification_keys) == {k.kid for k in rotation}
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for key in rotation:
        alg, public = keyset.verification_keys[key.kid]
        assert alg == key.alg
        assert public.public_bytes(*raw) == key.public_key.public_bytes(*raw)
    # A token signed earlier by a now-retiring key still verifies with the set.
    retiring = next(k for k in rotation if k.kid == "rs-retiring-newest")
    token = jose.sign({"sub": "x"}, retiring.private_key, retiring.alg, retiring.kid)
    assert jose.verify(token, keyset.verification_keys, keyset.algorithms).claims == {"sub": "x"}


def test_keyset_jwks_lists_every_key_public_only(rotation: list[SigningKey]) -> None:
    keyset = KeySet(rotation)
    document: dict[str, Any] = json.loads(json.dumps(keyset.jwks))
    assert set(document) == {"keys"}
    assert sorted(jwk["kid"] for jwk in document["keys"]) == sorted(k.kid for k in rotation)
    by_kid = {k.kid: k for k in rotation}
    for jwk in document["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk), jwk["kid"]
        assert jwk["use"] == "sig" and jwk["alg"] == by_kid[jwk["kid"]].alg
        assert jwk == jose.public_jwk(by_kid[jwk["kid"]].public_key, jwk["kid"], jwk["alg"])
    serialized = json.dumps(keyset.jwks).encode()
    for key in rotation:
        for name, secret in _private_encodings(key.private_key).items():
            if name.startswith(("rsa-", "ec-", "ed25519-")):
                assert b64url(secret).encode() not in serialized, (key.kid, name)


def test_keyset_with_only_retiring_keys_for_an_alg(rotation: list[SigningKey]) -> None:
    keyset = KeySet([k for k in rotation if k.kid in {"rs-new", "ed-retiring-newest"}])
    assert keyset.signing_key("RS256").kid == "rs-new"
    with pytest.raises(LookupError):
        keyset.signing_key("EdDSA")
    with pytest.raises(LookupError):
        keyset.signing_key("ES256")
    assert keyset.algorithms == ("RS256",)
    assert keyset.missing_algorithms() == ["ES256", "EdDSA"]
    assert keyset.missing_algorithms(["EdDSA"]) == ["EdDSA"]
    assert "ed-retiring-newest" in keyset.verification_keys
    assert {jwk["kid"] for jwk in keyset.jwks["keys"]} == {"rs-new", "ed-retiring-newest"}


def test_empty_keyset() -> None:
    keyset = KeySet()
    assert keyset.jwks == {"keys": []} and keyset.verification_keys == {}
    assert keyset.algorithms == () and keyset.missing_algorithms() == list(ALL)
    with pytest.raises(LookupError):
        keyset.signing_key("RS256")


def test_keyset_signs_and_verifies_across_encryption(rotation: list[SigningKey]) -> None:
    """The process path: keys stored encrypted, decrypted into a KeySet, tokens signed and verified."""
    encryptor = KeyEncryptor(MASTER)
    keyset = KeySet([encryptor.decrypt(encryptor.encrypt(k)) for k in rotation])
    for alg in ALL:
        key = keyset.signing_key(alg)
        token = jose.sign({"alg-used": alg}, key.private_key, alg, key.kid)
        assert jose.verify(token, keyset.verification_keys, [alg]).claims == {"alg-used": alg}
