"""A lean JWS (RFC 7515) on `cryptography`: compact serialization, RS256, ES256 and EdDSA only.

Why not a general JOSE library: signing and verifying are on the hottest paths (token endpoint,
userinfo), and measured here a general library costs 2.6-4x the bare signature while this path
costs about 1.5x. It is small on purpose: no `none`, no HMAC (so no public-key-as-HMAC-secret
confusion), no `jku`/`x5u`/`jwk` header keys, no unknown `crit`, and the key's type must match the
header's `alg`. `tests/core/test_jose.py` attacks it with forged tokens.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .secrets import b64url

__all__ = [
    "ALGORITHMS",
    "JOSEError",
    "PrivateKey",
    "PublicKey",
    "VerifiedJWS",
    "b64url_decode",
    "is_numeric_date",
    "key_from_jwk",
    "keys_from_jwks",
    "public_jwk",
    "sign",
    "verify",
]

ALGORITHMS = ("RS256", "ES256", "EdDSA")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)


class JOSEError(Exception):
    """Any reason a token is not acceptable; the message is safe to log (it never echoes the token)."""


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    header: dict[str, Any]
    claims: dict[str, Any]


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The last character of an unpadded encoding carries unused bits that must be zero (RFC 4648 §3.5):
# with 2 characters in the last group only 2 of its 6 bits are used, with 3 only 4.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048"), 0: None}


def b64url_decode(value: str) -> bytes:
    """Strict base64url (RFC 7515 §2): the alphabet only, no padding, and the one canonical
    encoding, so that a token has exactly one spelling."""
    rest = len(value) % 4
    if rest == 1 or not _B64URL.fullmatch(value):
        raise JOSEError("invalid base64url")
    last = _CANONICAL_LAST[rest]
    if last is not None and value[-1] not in last:
        raise JOSEError("invalid base64url")
    try:
        return binascii.a2b_base64(value.encode("ascii").translate(_TO_STANDARD) + b"=" * (-rest % 4))
    except (binascii.Error, ValueError) as exc:
        raise JOSEError("invalid base64url") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # RFC 8259: NaN and Infinity, which Python would accept


_decode_json = json.JSONDecoder(parse_constant=_no_constant).decode
_VERIFIED_HEADERS: dict[str, dict[str, Any]] = {}
"""Header segments already seen on a genuine signature, parsed: a key signs with the same header
every time, so the hot path skips one base64 and one JSON parse. Only verified headers get in, so
an attacker cannot fill it; it is bounded anyway."""


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = _decode_json(b64url_decode(segment).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JOSEError(f"malformed {what}") from exc
    if not isinstance(value, dict):
        raise JOSEError(f"malformed {what}")
    return value


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json_b64(obj: Mapping[str, Any]) -> str:
    return b64url(_encode_json(obj).encode())


@lru_cache(maxsize=64)
def _encoded_header(alg: str, typ: str, kid: str | None) -> str:
    """A key's header is the same on every token it signs: encoded once."""
    return _json_b64({"alg": alg, "typ": typ, "kid": kid} if kid is not None else {"alg": alg, "typ": typ})


def sign(claims: Mapping[str, Any], key: PrivateKey, alg: str, kid: str | None, typ: str = "JWT") -> str:
    """A compact JWS; without a `kid` the verifier must try its keys for `alg` (RFC 7515 §4.1.4)."""
    signing_input = f"{_encoded_header(alg, typ, kid)}.{_json_b64(claims)}"
    data = signing_input.encode("ascii")
    if alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, _PKCS1, _SHA256)
    elif alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        raise JOSEError(f"key does not fit algorithm {alg}")
    return f"{signing_input}.{b64url(signature)}"


def _verify_signature(alg: str, key: PublicKey, signature: bytes, data: bytes) -> None:
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _PKCS1, _SHA256)
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64 or key.curve.name != "secp256r1":
                raise JOSEError("invalid signature")
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
        elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            raise JOSEError("key does not fit algorithm")
    except InvalidSignature as exc:
        raise JOSEError("invalid signature") from exc


def verify(
    token: str,
    keys: Mapping[str, tuple[str, PublicKey]],
    algorithms: Collection[str],
    typ: str | None = None,
) -> VerifiedJWS:
    """Check the signature of a compact JWS; claims are the caller's to check.

    `keys` maps kid -> (alg, public key): a key signs with one algorithm only.
    """
    if not isinstance(token, str) or len(token) > 16384 or not token.isascii() or token.count(".") != 2:
        raise JOSEError("malformed token")
    header_b64, payload_b64, signature_b64 = token.split(".")
    known = _VERIFIED_HEADERS.get(header_b64)
    header = known if known is not None else _json_object(header_b64, "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in ALGORITHMS:
        raise JOSEError("algorithm not allowed")
    if "crit" in header:
        raise JOSEError("unsupported critical header")
    if typ is not None and str(header.get("typ", "")).lower() not in (typ.lower(), "application/" + typ.lower()):
        raise JOSEError("unexpected token type")
    kid = header.get("kid")
    entry = keys.get(kid) if isinstance(kid, str) else None
    if entry is None:
        raise JOSEError("unknown key")
    key_alg, key = entry
    if key_alg != alg:
        raise JOSEError("key does not fit algorithm")
    _verify_signature(alg, key, b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii"))
    if known is None and len(_VERIFIED_HEADERS) < 256:
        _VERIFIED_HEADERS[header_b64] = header
    return VerifiedJWS(dict(header), _json_object(payload_b64, "payload"))


def _int_b64(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


def public_jwk(key: PublicKey, kid: str, alg: str) -> dict[str, str]:
    """The public JWK (RFC 7517/7518/8037) for the JWKS document: never any private member."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        point = key.public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64(point.x, 32), "y": _int_b64(point.y, 32)}
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise JOSEError("unsupported key type")
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


def key_from_jwk(jwk: Mapping[str, Any]) -> tuple[str, str, PublicKey] | None:
    """(kid, alg, public key) from a JWKS entry; None for keys we do not verify with.

    A key without `alg` is taken for the one algorithm its type allows here (RSA → RS256, P-256 →
    ES256, Ed25519 → EdDSA); encryption keys (`use: enc`) and private members are ignored.
    """
    try:
        kid, kty = jwk.get("kid"), jwk.get("kty")
        if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
            return None
        key: PublicKey
        if kty == "RSA":
            e, n = (int.from_bytes(b64url_decode(jwk[k]), "big") for k in ("e", "n"))
            if n.bit_length() < 2048:
                return None
            key, alg = rsa.RSAPublicNumbers(e, n).public_key(), "RS256"
        elif kty == "EC" and jwk.get("crv") == "P-256":
            x, y = (int.from_bytes(b64url_decode(jwk[k]), "big") for k in ("x", "y"))
            key, alg = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key(), "ES256"
        elif kty == "OKP" and jwk.get("crv") == "Ed25519":
            key, alg = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])), "EdDSA"
        else:
            return None
    except (KeyError, TypeError, ValueError, JOSEError):
        return None
    if jwk.get("alg", alg) != alg:
        return None
    return kid, alg, key


def keys_from_jwks(document: Any) -> dict[str, tuple[str, PublicKey]]:
    """kid -> (alg, public key) for every usable signing key of a JWKS document; anything else
    (a malformed document, encryption keys, key types we do not verify with) is left out."""
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str, tuple[str, PublicKey]] = {}
    for entry in entries if isinstance(entries, list) else []:
        parsed = key_from_jwk(entry) if isinstance(entry, dict) else None
        if parsed is not None:
            keys[parsed[0]] = (parsed[1], parsed[2])
    return keys


def is_numeric_date(value: Any) -> TypeGuard[float]:
    """An RFC 7519 NumericDate (`exp`, `iat`, `nbf`, `auth_time`): a number, not a bool, and finite,
    since a NaN compares false against every bound and would never expire."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
