"""Attacks on `bastion.core.jose.verify` with forged tokens, plus round-trips and the public JWK.

Forgeries are crafted with `cryptography` (and `hmac` for HS256) directly, never with `jose.sign`,
so a bug in `sign` cannot hide a bug in `verify`. Every rejection must be a `jose.JOSEError`: any
other exception escapes the callers' `except jose.JOSEError` and becomes a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from bastion.core import jose
from bastion.core.secrets import b64url

ALL = ("RS256", "ES256", "EdDSA")
KIDS = {"RS256": "rsa-1", "ES256": "ec-1", "EdDSA": "ed-1"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

Signer = Callable[[bytes], bytes]


# --- keys and signers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ours() -> dict[str, jose.PrivateKey]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def attacker() -> dict[str, jose.PrivateKey]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def keys(ours: dict[str, jose.PrivateKey]) -> dict[str, tuple[str, jose.PublicKey]]:
    return {KIDS[alg]: (alg, key.public_key()) for alg, key in ours.items()}


def signer(key: jose.PrivateKey) -> Signer:
    """The JWS signature for the key's algorithm (ES256 as raw r||s, RFC 7518 §3.4)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8

        def ecdsa(data: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return ecdsa
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def forge(
    header: Any,
    claims: Any,
    sign: Signer | None,
    *,
    encode: Callable[[bytes], str] = b64url,
    signature: bytes | None = None,
) -> str:
    """A compact JWS from parts: dicts/lists are JSON-encoded, bytes are taken as is."""
    h = encode(header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode())
    p = encode(claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{h}.{p}"
    if signature is None:
        signature = sign(signing_input.encode("ascii")) if sign is not None else b""
    return f"{signing_input}.{encode(signature)}"


def hdr(alg: str, kid: str | None = None, **extra: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return {**header, **extra}


CLAIMS = {"iss": "https://op.example", "sub": "user-alice", "aud": "app", "exp": 2_000_000_000, "scope": "openid"}


def rejects(token: Any, keys: Any, algorithms: Any = ALL, typ: str | None = None) -> jose.JOSEError:
    with pytest.raises(jose.JOSEError) as info:
        jose.verify(token, keys, algorithms, typ=typ)
    return info.value


def raw_parts(token: str) -> tuple[str, str, bytes]:
    h, p, s = token.split(".")
    return h, p, base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# --- positive round-trips ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL)
def test_round_trip_with_sign(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = jose.sign(CLAIMS, ours[alg], alg, KIDS[alg])
    verified = jose.verify(token, keys, ALL)
    assert verified.claims == CLAIMS
    assert verified.header == {"alg": alg, "typ": "JWT", "kid": KIDS[alg]}


@pytest.mark.parametrize("alg", ALL)
def test_round_trip_with_independent_signer(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = forge(hdr(alg, KIDS[alg]), CLAIMS, signer(ours[alg]))
    assert jose.verify(token, keys, [alg]).claims == CLAIMS


@pytest.mark.parametrize("alg", ALL)
def test_sign_output_verifies_independently(alg: str, ours: dict[str, jose.PrivateKey]) -> None:
    """What `sign` emits is a standard JWS: checked here with `cryptography` alone."""
    token = jose.sign({"x": "é"}, ours[alg], alg, "k")
    h, p, sig = raw_parts(token)
    data = f"{h}.{p}".encode()
    public = ours[alg].public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert len(sig) == 64
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(sig, data)
    assert "=" not in token and "+" not in token and "/" not in token


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
def test_access_token_typ_accepted(typ: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = jose.sign(CLAIMS, ours["ES256"], "ES256", KIDS["ES256"], typ=typ)
    assert jose.verify(token, keys, ALL, typ="at+jwt").header["typ"] == typ


def test_typ_not_checked_unless_asked(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    header = {"alg": "EdDSA", "kid": KIDS["EdDSA"]}
    assert jose.verify(forge(header, CLAIMS, signer(ours["EdDSA"])), keys, ALL).claims == CLAIMS


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [("RS256", "ES256"), ("ES256", "EdDSA"), ("EdDSA", "RS256"), ("HS256", "RS256"), ("none", "EdDSA")],
)
def test_sign_refuses_key_that_does_not_fit(alg: str, key_alg: str, ours: dict[str, jose.PrivateKey]) -> None:
    with pytest.raises(jose.JOSEError):
        jose.sign(CLAIMS, ours[key_alg], alg, "k")


# --- alg "none" -------------------------------------------------------------------------------


@pytest.mark.parametrize("none", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("allow", [ALL, (*ALL, "none", "None", "NONE", "nOnE", "")])
def test_alg_none_with_empty_signature(none: str, allow: tuple[str, ...], keys: dict[str, Any]) -> None:
    rejects(forge(hdr(none, KIDS["RS256"]), CLAIMS, None), keys, allow)


@pytest.mark.parametrize("kid", [KIDS["RS256"], None])
def test_alg_none_without_signature_part(kid: str | None, keys: dict[str, Any]) -> None:
    h, p, _ = forge(hdr("none", kid), CLAIMS, None).split(".")
    rejects(f"{h}.{p}", keys, (*ALL, "none"))


def test_alg_none_with_a_real_signature_attached(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    real = jose.sign(CLAIMS, ours["RS256"], "RS256", KIDS["RS256"])
    _, _, sig = real.split(".")
    h, p, _ = forge(hdr("none", KIDS["RS256"]), CLAIMS, None).split(".")
    rejects(f"{h}.{p}.{sig}", keys, (*ALL, "none"))


# --- HS256 with the public key as HMAC secret (key confusion) ---------------------------------


def _public_key_encodings(key: jose.PrivateKey) -> dict[str, bytes]:
    public = key.public_key()
    encodings = {
        "pem-spki": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der-spki": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    if isinstance(public, rsa.RSAPublicKey):
        encodings["pem-pkcs1"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        encodings["der-pkcs1"] = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return encodings


def _hmac_signer(secret: bytes, digest: Callable[..., Any]) -> Signer:
    return lambda data: hmac.new(secret, data, digest).digest()


@pytest.mark.parametrize("alg_of_key", ["RS256", "ES256"])
@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hmac_with_public_key_as_secret(
    alg_of_key: str, hs: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
    jwk_json = json.dumps(jose.public_jwk(ours[alg_of_key].public_key(), KIDS[alg_of_key], alg_of_key)).encode()
    secrets = {**_public_key_encodings(ours[alg_of_key]), "jwk-json": jwk_json}
    for secret in secrets.values():
        token = forge(hdr(hs, KIDS[alg_of_key]), CLAIMS, _hmac_signer(secret, digest))
        # Even a caller that wrongly lists HS256 as allowed, or registers the key for it, must not accept.
        rejects(token, keys, ALL)
        rejects(token, keys, (*ALL, hs))
        rejects(token, {KIDS[alg_of_key]: (hs, ours[alg_of_key].public_key())}, (hs,))


# --- algorithm substitution between keys ------------------------------------------------------


def test_rs256_token_relabelled_es256(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    sig = signer(ours["RS256"])
    rejects(forge(hdr("ES256", KIDS["RS256"]), CLAIMS, sig), keys)  # kid of the RSA key
    rejects(forge(hdr("ES256", KIDS["ES256"]), CLAIMS, sig), keys)  # kid of the EC key


def test_es256_token_relabelled_rs256(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    sig = signer(ours["ES256"])
    rejects(forge(hdr("RS256", KIDS["ES256"]), CLAIMS, sig), keys)
    rejects(forge(hdr("RS256", KIDS["RS256"]), CLAIMS, sig), keys)


@pytest.mark.parametrize("signed_by", ALL)
@pytest.mark.parametrize("claimed_alg", ALL)
@pytest.mark.parametrize("kid_of", ALL)
def test_every_mismatch_of_alg_kid_and_signing_key(
    signed_by: str, claimed_alg: str, kid_of: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    token = forge(hdr(claimed_alg, KIDS[kid_of]), CLAIMS, signer(ours[signed_by]))
    if signed_by == claimed_alg == kid_of:
        assert jose.verify(token, keys, ALL).claims == CLAIMS
    else:
        rejects(token, keys)


def test_key_registered_under_wrong_alg(ours: dict[str, jose.PrivateKey]) -> None:
    """A key map entry whose key type does not fit its alg never verifies."""
    token = forge(hdr("ES256", "k"), CLAIMS, signer(ours["ES256"]))
    rejects(token, {"k": ("ES256", ours["RS256"].public_key())})
    rejects(token, {"k": ("ES256", ours["EdDSA"].public_key())})


def test_es256_alg_with_a_p384_key(keys: dict[str, Any]) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = forge(hdr("ES256", "p384"), CLAIMS, signer(p384))
    rejects(token, {"p384": ("ES256", p384.public_key())})


# --- wrong key, modified token ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL)
def test_valid_signature_from_another_key_under_our_kid(
    alg: str, attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    token = forge(hdr(alg, KIDS[alg]), CLAIMS, signer(attacker[alg]))
    assert str(rejects(token, keys)) == "invalid signature"


@pytest.mark.parametrize("alg", ALL)
@pytest.mark.parametrize(
    ("claim", "value"), [("sub", "user-mallory"), ("exp", 2_000_000_001), ("scope", "openid admin")]
)
def test_payload_modified_after_signing(
    alg: str, claim: str, value: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    h, _, s = jose.sign(CLAIMS, ours[alg], alg, KIDS[alg]).split(".")
    rejects(f"{h}.{b64json({**CLAIMS, claim: value})}.{s}", keys)


@pytest.mark.parametrize("alg", ALL)
def test_payload_reencoded_with_same_json_value(
    alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    """The signature covers the encoded bytes, not the JSON value."""
    h, _, s = jose.sign(CLAIMS, ours[alg], alg, KIDS[alg]).split(".")
    rejects(f"{h}.{b64url(json.dumps(CLAIMS, indent=1).encode())}.{s}", keys)


@pytest.mark.parametrize("alg", ALL)
@pytest.mark.parametrize("change", [{"typ": "at+jwt"}, {"cty": "JWT"}, {"x": 1}])
def test_header_modified_after_signing(
    alg: str, change: dict[str, Any], ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    _, p, s = jose.sign(CLAIMS, ours[alg], alg, KIDS[alg]).split(".")
    rejects(f"{b64json({**hdr(alg, KIDS[alg]), **change})}.{p}.{s}", keys)


def _mutations(sig: bytes) -> dict[str, bytes]:
    flip = bytearray(sig)
    return {
        "truncated-1": sig[:-1],
        "truncated-half": sig[: len(sig) // 2],
        "empty": b"",
        "extended-zero": sig + b"\x00",
        "leading-zero": b"\x00" + sig,
        "flip-first": bytes([sig[0] ^ 0x01]) + sig[1:],
        "flip-middle": bytes(flip[: len(sig) // 2]) + bytes([sig[len(sig) // 2] ^ 0x80]) + sig[len(sig) // 2 + 1 :],
        "flip-last": sig[:-1] + bytes([sig[-1] ^ 0x01]),
        "zeros": bytes(len(sig)),
    }


@pytest.mark.parametrize("alg", ALL)
def test_signature_truncated_or_bit_flipped(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    h, p, sig = raw_parts(jose.sign(CLAIMS, ours[alg], alg, KIDS[alg]))
    for name, mutated in _mutations(sig).items():
        assert mutated != sig, name
        rejects(f"{h}.{p}.{b64url(mutated)}", keys)


def test_signature_of_another_token_from_same_key(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    h, p, _ = jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"]).split(".")
    _, _, other = jose.sign({**CLAIMS, "sub": "x"}, ours["EdDSA"], "EdDSA", KIDS["EdDSA"]).split(".")
    rejects(f"{h}.{p}.{other}", keys)


# --- ES256 signature form ---------------------------------------------------------------------


def test_es256_der_signature_rejected(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    key = ours["ES256"]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    token = forge(hdr("ES256", KIDS["ES256"]), CLAIMS, lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))
    rejects(token, keys)


@pytest.mark.parametrize("length", [0, 32, 63, 65, 66, 96, 128])
def test_es256_signature_of_wrong_length(length: int, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    h, p, sig = raw_parts(forge(hdr("ES256", KIDS["ES256"]), CLAIMS, signer(ours["ES256"])))
    assert len(sig) == 64
    if length <= 64:
        bad = sig[:length]
    else:  # the valid r||s with extra bytes: leading zero padding per component, or trailing junk
        extra = length - 64
        if extra <= 2:
            bad = b"\x00" * (extra // 2) + sig[:32] + b"\x00" * (extra - extra // 2) + sig[32:]
        else:
            bad = sig + bytes(extra)
    assert len(bad) == length
    rejects(f"{h}.{p}.{b64url(bad)}", keys)


def test_es256_signature_with_r_and_s_swapped(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    h, p, sig = raw_parts(forge(hdr("ES256", KIDS["ES256"]), CLAIMS, signer(ours["ES256"])))
    rejects(f"{h}.{p}.{b64url(sig[32:] + sig[:32])}", keys)


def test_es256_signature_with_r_or_s_out_of_range(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 group order
    h, p, sig = raw_parts(forge(hdr("ES256", KIDS["ES256"]), CLAIMS, signer(ours["ES256"])))
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    for bad_r, bad_s in [(r + n, s), (r, s + n), (n, s), (r, n), (0, s), (r, 0), (0, 0)]:
        if bad_r >= 2**256 or bad_s >= 2**256:
            continue
        rejects(f"{h}.{p}.{b64url(bad_r.to_bytes(32, 'big') + bad_s.to_bytes(32, 'big'))}", keys)


# --- kid --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL)
def test_unknown_kid(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    assert str(rejects(forge(hdr(alg, "no-such-kid"), CLAIMS, signer(ours[alg])), keys)) == "unknown key"


@pytest.mark.parametrize("alg", ALL)
def test_missing_kid(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    rejects(forge(hdr(alg), CLAIMS, signer(ours[alg])), keys)
    # Not even when the caller has a single key, or a key under the empty kid.
    rejects(forge(hdr(alg), CLAIMS, signer(ours[alg])), {KIDS[alg]: keys[KIDS[alg]]})
    rejects(forge(hdr(alg), CLAIMS, signer(ours[alg])), {"": keys[KIDS[alg]], "None": keys[KIDS[alg]]})


@pytest.mark.parametrize("kid", [1, 1.5, None, True, ["rsa-1"], {"kid": "rsa-1"}, [], {}])
def test_kid_not_a_string(kid: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = forge({"alg": "RS256", "typ": "JWT", "kid": kid}, CLAIMS, signer(ours["RS256"]))
    rejects(token, keys)
    # A key map that would match the non-string kid (int key, None key) must still not be consulted.
    rejects(token, {**keys, 1: keys["rsa-1"], 1.5: keys["rsa-1"], None: keys["rsa-1"]})


def test_kid_matched_exactly(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    for kid in ["RSA-1", "rsa-1 ", " rsa-1", "rsa-1\x00", "rsa"]:
        rejects(forge(hdr("RS256", kid), CLAIMS, signer(ours["RS256"])), keys)


# --- crit, typ --------------------------------------------------------------------------------


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "exp", None])
def test_crit_header_rejected(crit: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    header = {**hdr("EdDSA", KIDS["EdDSA"], crit=crit), "exp": 1, "b64": False}
    assert str(rejects(forge(header, CLAIMS, signer(ours["EdDSA"])), keys)) == "unsupported critical header"


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", "application/jwt", "", "at+jwt ", "at+JWT+x", "application/application/at+jwt",
     "logout+jwt", "x/at+jwt", ["at+jwt"], {"typ": "at+jwt"}, None, 1],
)
def test_typ_mismatch_when_at_jwt_required(typ: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = forge({"alg": "ES256", "kid": KIDS["ES256"], "typ": typ}, CLAIMS, signer(ours["ES256"]))
    assert str(rejects(token, keys, typ="at+jwt")) == "unexpected token type"


def test_typ_missing_when_at_jwt_required(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = forge({"alg": "ES256", "kid": KIDS["ES256"]}, CLAIMS, signer(ours["ES256"]))
    rejects(token, keys, typ="at+jwt")


def test_id_token_is_not_an_access_token(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    """An ID token (typ JWT) presented as a bearer token is refused (RFC 9068 §4, RFC 8725 §3.11)."""
    id_token = jose.sign(CLAIMS, ours["RS256"], "RS256", KIDS["RS256"])
    rejects(id_token, keys, typ="at+jwt")


# --- encoding ---------------------------------------------------------------------------------


def _padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _json_needing_padding(obj: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """`obj` with a filler member such that its JSON length is not a multiple of 3 (so base64 pads)."""
    for i in range(3):
        padded = {**obj, "f": "a" * i}
        raw = json.dumps(padded, separators=(",", ":")).encode()
        if len(raw) % 3:
            return padded, raw
    raise AssertionError("unreachable")


@pytest.mark.parametrize("part", [0, 1, 2])
def test_base64_padding_rejected(part: int, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    header, hb = _json_needing_padding(hdr("EdDSA", KIDS["EdDSA"]))
    claims, pb = _json_needing_padding(CLAIMS)
    h, p = b64url(hb), b64url(pb)
    if part == 0:
        h = _padded(hb)
    elif part == 1:
        p = _padded(pb)
    signing_input = f"{h}.{p}"
    sig = signer(ours["EdDSA"])(signing_input.encode())
    s = _padded(sig) if part == 2 else b64url(sig)
    token = f"{signing_input}.{s}"
    assert "=" in token.split(".")[part]
    assert str(rejects(token, keys)) == "invalid base64url"
    # The same content without padding is accepted: the padding alone is the reason.
    unpadded = ".".join(piece.rstrip("=") for piece in token.split("."))
    if part == 2:
        assert jose.verify(unpadded, keys, ALL).claims == claims
    assert header


def test_base64_standard_alphabet_rejected_in_header(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    # "?>>" and "???" encode to "Pz4+" and "Pz8/": the standard alphabet's "+" and "/".
    for filler in ["?>>", "???"]:
        header = hdr("EdDSA", KIDS["EdDSA"], x=filler)
        raw = json.dumps(header, separators=(",", ":")).encode()
        h = base64.b64encode(raw).decode().rstrip("=")
        assert "+" in h or "/" in h
        p = b64json(CLAIMS)
        sig = signer(ours["EdDSA"])(f"{h}.{p}".encode())
        rejects(f"{h}.{p}.{b64url(sig)}", keys)


def test_base64_standard_alphabet_rejected_in_signature(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    for i in range(200):
        token = jose.sign({**CLAIMS, "n": i}, ours["EdDSA"], "EdDSA", KIDS["EdDSA"])
        h, p, s = token.split(".")
        if "-" in s or "_" in s:
            break
    else:  # pragma: no cover - probability about 0.065**200
        pytest.fail("no signature with - or _ found")
    assert jose.verify(token, keys, ALL)
    standard = s.replace("-", "+").replace("_", "/")
    rejects(f"{h}.{p}.{standard}", keys)


@pytest.mark.parametrize("junk", ["!!!!", "    ", "\n\n\n\n", "\t\t\t\t", "@@@@", "\x00\x00\x00\x00"])
def test_base64_characters_outside_alphabet_rejected_in_signature(
    junk: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    h, p, s = jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"]).split(".")
    rejects(f"{h}.{p}.{s[:8]}{junk}{s[8:]}", keys)


def test_base64_non_canonical_trailing_bits_rejected(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    h, p, s = jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"]).split(".")
    assert len(s) % 4 == 2  # 64 bytes -> 86 characters, the last carrying 4 unused bits
    last = alphabet[alphabet.index(s[-1]) ^ 0x01]
    rejects(f"{h}.{p}.{s[:-1]}{last}", keys)


@pytest.mark.parametrize(
    "header",
    [b"not json", b"{", b"{'alg': 'EdDSA'}", b"\xff\xfe\x00", b"", b"null}", b'{"alg":"EdDSA","kid":"ed-1"'],
)
def test_header_not_json(header: bytes, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    rejects(forge(header, CLAIMS, signer(ours["EdDSA"])), keys)


@pytest.mark.parametrize(
    "header",
    [["EdDSA", "ed-1"], [{"alg": "EdDSA", "kid": "ed-1"}], "EdDSA", 1, None, True],
)
def test_header_json_but_not_an_object(header: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    assert str(rejects(forge(header, CLAIMS, signer(ours["EdDSA"])), keys)) == "malformed header"


@pytest.mark.parametrize("alg", [None, 1, ["EdDSA"], {"EdDSA": 1}, "eddsa", "EDDSA", "Ed25519", "rs256", "PS256"])
def test_alg_not_a_supported_string(alg: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = forge({"alg": alg, "kid": KIDS["EdDSA"]}, CLAIMS, signer(ours["EdDSA"]))
    rejects(token, keys)
    rejects(token, keys, frozenset(ALL))  # a set as allow-list: no TypeError on an unhashable alg


def test_alg_missing(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    rejects(forge({"kid": KIDS["EdDSA"]}, CLAIMS, signer(ours["EdDSA"])), keys)


@pytest.mark.parametrize(
    "payload",
    [[CLAIMS], ["sub", "user-alice"], "user-alice", 1, None, b"not json", b"\xff\xfe", b""],
)
def test_payload_not_a_json_object(payload: Any, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    """Validly signed, but the payload is not a JSON object: still refused."""
    token = forge(hdr("EdDSA", KIDS["EdDSA"]), payload, signer(ours["EdDSA"]))
    assert str(rejects(token, keys)) == "malformed payload"


@pytest.mark.parametrize("parts", [1, 2, 4, 5])
def test_wrong_number_of_parts(parts: int, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"])
    h, p, s = token.split(".")
    pieces = {1: [h], 2: [h, p], 4: [h, p, s, s], 5: [h, p, s, "", ""]}[parts]
    assert str(rejects(".".join(pieces), keys)) == "malformed token"


@pytest.mark.parametrize("token", ["", ".", "..", "...", "a.b.c", " . . "])
def test_degenerate_tokens(token: str, keys: dict[str, Any]) -> None:
    rejects(token, keys)


def test_valid_token_with_surrounding_whitespace(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"])
    rejects(" " + token, keys)


def _sized_token(key: jose.PrivateKey, filler: int) -> str:
    return jose.sign({**CLAIMS, "pad": "a" * filler}, key, "EdDSA", KIDS["EdDSA"])


def test_huge_token_rejected(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    huge = _sized_token(ours["EdDSA"], 20_000)
    assert len(huge) > 16 * 1024
    assert str(rejects(huge, keys)) == "malformed token"
    # Huge but not even well-formed: refused on length before any decoding.
    rejects("a" * 1_000_000 + "..", keys)


def test_size_limit_boundary(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    filler = 11_500
    while len(_sized_token(ours["EdDSA"], filler + 1)) <= 16384:
        filler += 1
    fits, too_big = _sized_token(ours["EdDSA"], filler), _sized_token(ours["EdDSA"], filler + 1)
    assert len(fits) <= 16384 < len(too_big) <= 16386
    assert jose.verify(fits, keys, ALL).claims["pad"] == "a" * filler
    rejects(too_big, keys)


@pytest.mark.parametrize("token", [None, 1, b"a.b.c", bytearray(b"a.b.c"), ["a", "b", "c"], {"token": "a.b.c"}])
def test_non_string_input(token: Any, keys: dict[str, Any]) -> None:
    rejects(token, keys)


def test_bytes_of_a_valid_token(ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    rejects(jose.sign(CLAIMS, ours["EdDSA"], "EdDSA", KIDS["EdDSA"]).encode(), keys)


@pytest.mark.parametrize("payload_part", ["é", "eyJhIjoxfQé", "\u2603", "\udcff"])
def test_non_ascii_payload_part(payload_part: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    h, _, s = jose.sign(CLAIMS, ours["RS256"], "RS256", KIDS["RS256"]).split(".")
    rejects(f"{h}.{payload_part}.{s}", keys)


@pytest.mark.parametrize("part", [0, 2])
def test_non_ascii_header_or_signature_part(part: int, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    pieces = jose.sign(CLAIMS, ours["RS256"], "RS256", KIDS["RS256"]).split(".")
    pieces[part] = pieces[part][:4] + "é" + pieces[part][4:]
    rejects(".".join(pieces), keys)


@pytest.mark.parametrize("nested", [b"[" * 5000, b'{"a":' * 2000, b"[" * 12000])
def test_deeply_nested_header(nested: bytes, keys: dict[str, Any]) -> None:
    token = f"{b64url(nested)}.{b64json(CLAIMS)}.{b64url(bytes(64))}"
    assert len(token) <= 16384
    rejects(token, keys)


def test_payload_parsed_only_after_the_signature(
    attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    """A deeply nested payload is not parsed unless the signature is ours: an attacker cannot reach it."""
    token = forge(hdr("EdDSA", KIDS["EdDSA"]), b"[" * 5000, signer(attacker["EdDSA"]))
    assert str(rejects(token, keys)) == "invalid signature"


# --- allow-list -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL)
def test_algorithm_not_in_allow_list(alg: str, ours: dict[str, jose.PrivateKey], keys: dict[str, Any]) -> None:
    token = jose.sign(CLAIMS, ours[alg], alg, KIDS[alg])
    others = [a for a in ALL if a != alg]
    assert str(rejects(token, keys, others)) == "algorithm not allowed"
    rejects(token, keys, [])
    rejects(token, keys, [alg.lower()])
    assert jose.verify(token, keys, [alg]).claims == CLAIMS


# --- jku / x5u / jwk / x5c headers are ignored -------------------------------------------------


def _attacker_headers(alg: str, kid: str, attacker_key: jose.PrivateKey) -> list[dict[str, Any]]:
    embedded = jose.public_jwk(attacker_key.public_key(), kid, alg)
    der = attacker_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [
        hdr(alg, kid, jwk=embedded),
        hdr(alg, kid, jku="https://attacker.example/jwks.json"),
        hdr(alg, kid, x5u="https://attacker.example/cert.pem"),
        hdr(alg, kid, x5c=[base64.b64encode(der).decode()]),
        hdr(alg, kid, jwk=embedded, jku="https://attacker.example/jwks.json", x5u="https://attacker.example/c.pem"),
    ]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("verify tried to use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("alg", ALL)
def test_embedded_or_remote_key_with_unknown_kid(
    alg: str, attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    for header in _attacker_headers(alg, "attacker-kid", attacker[alg]):
        token = forge(header, CLAIMS, signer(attacker[alg]))
        assert str(rejects(token, keys)) == "unknown key"


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("alg", ALL)
def test_embedded_or_remote_key_with_our_kid(
    alg: str, attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    for header in _attacker_headers(alg, KIDS[alg], attacker[alg]):
        token = forge(header, CLAIMS, signer(attacker[alg]))
        assert str(rejects(token, keys)) == "invalid signature"


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("alg", ALL)
def test_embedded_key_does_not_replace_ours(
    alg: str, ours: dict[str, jose.PrivateKey], attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    """Signed by our key with an attacker `jwk` header: verifies, i.e. the key came from our map."""
    header = _attacker_headers(alg, KIDS[alg], attacker[alg])[0]
    assert jose.verify(forge(header, CLAIMS, signer(ours[alg])), keys, ALL).claims == CLAIMS


# --- errors do not echo the token -------------------------------------------------------------


def test_error_messages_do_not_echo_the_token(
    ours: dict[str, jose.PrivateKey], attacker: dict[str, jose.PrivateKey], keys: dict[str, Any]
) -> None:
    secret_claims = {**CLAIMS, "sub": "SECRET-SUBJECT-VALUE"}
    tokens = [
        forge(hdr("RS256", KIDS["RS256"]), secret_claims, signer(attacker["RS256"])),
        forge(hdr("none", "SECRET-KID-VALUE"), secret_claims, None),
        forge(hdr("EdDSA", "SECRET-KID-VALUE"), secret_claims, signer(ours["EdDSA"])),
        forge(hdr("EdDSA", KIDS["EdDSA"]), b"SECRET-PAYLOAD", signer(ours["EdDSA"])),
        forge(b"SECRET-HEADER", secret_claims, None),
    ]
    for token in tokens:
        error = rejects(token, keys)
        text = str(error) + repr(error)
        assert "SECRET" not in text
        assert all(part not in text for part in token.split(".") if part)


# --- public_jwk -------------------------------------------------------------------------------


def _key_from_jwk(jwk: dict[str, str]) -> jose.PublicKey:
    def num(value: str) -> int:
        return int.from_bytes(jose.b64url_decode(value), "big")

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()
    if jwk["kty"] == "EC":
        assert jwk["crv"] == "P-256"
        return ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]), ec.SECP256R1()).public_key()
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    return ed25519.Ed25519PublicKey.from_public_bytes(jose.b64url_decode(jwk["x"]))


@pytest.mark.parametrize("alg", ALL)
def test_public_jwk_members(alg: str, ours: dict[str, jose.PrivateKey]) -> None:
    jwk = jose.public_jwk(ours[alg].public_key(), "kid-x", alg)
    assert not PRIVATE_MEMBERS & set(jwk)
    assert jwk["kid"] == "kid-x" and jwk["use"] == "sig" and jwk["alg"] == alg
    expected = {
        "RS256": {"kty", "n", "e", "kid", "use", "alg"},
        "ES256": {"kty", "crv", "x", "y", "kid", "use", "alg"},
        "EdDSA": {"kty", "crv", "x", "kid", "use", "alg"},
    }[alg]
    assert set(jwk) == expected
    assert {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}[alg] == jwk["kty"]
    for member in set(jwk) - {"kid", "use", "alg", "kty", "crv"}:
        value = jwk[member]
        assert isinstance(value, str) and value
        assert not {"=", "+", "/"} & set(value)
    json.dumps(jwk)


def test_public_jwk_encodings(ours: dict[str, jose.PrivateKey]) -> None:
    rsa_jwk = jose.public_jwk(ours["RS256"].public_key(), "k", "RS256")
    assert rsa_jwk["e"] == "AQAB"
    n = jose.b64url_decode(rsa_jwk["n"])
    assert n[0] != 0 and len(n) == 256  # RFC 7518 §6.3.1.1: no leading zero octets
    ec_jwk = jose.public_jwk(ours["ES256"].public_key(), "k", "ES256")
    assert ec_jwk["crv"] == "P-256"
    assert len(jose.b64url_decode(ec_jwk["x"])) == 32 and len(jose.b64url_decode(ec_jwk["y"])) == 32  # §6.2.1.2
    ed_jwk = jose.public_jwk(ours["EdDSA"].public_key(), "k", "EdDSA")
    assert ed_jwk["crv"] == "Ed25519" and len(jose.b64url_decode(ed_jwk["x"])) == 32


def test_ec_public_jwk_pads_short_coordinates() -> None:
    """x and y are always 32 octets, even when the coordinate has leading zero bytes."""
    for _ in range(2000):
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        if numbers.x.bit_length() <= 248 or numbers.y.bit_length() <= 248:
            break
    else:  # pragma: no cover - probability about (1 - 2/256) ** 2000
        pytest.skip("no short coordinate found")
    jwk = jose.public_jwk(key.public_key(), "k", "ES256")
    assert len(jose.b64url_decode(jwk["x"])) == 32 and len(jose.b64url_decode(jwk["y"])) == 32
    rebuilt = _key_from_jwk(jwk)
    assert isinstance(rebuilt, ec.EllipticCurvePublicKey) and rebuilt.public_numbers() == numbers


@pytest.mark.parametrize("alg", ALL)
def test_public_jwk_round_trips_into_a_verifying_key(alg: str, ours: dict[str, jose.PrivateKey]) -> None:
    jwk = jose.public_jwk(ours[alg].public_key(), "jwk-kid", alg)
    rebuilt = _key_from_jwk(json.loads(json.dumps(jwk)))
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert rebuilt.public_bytes(*raw) == ours[alg].public_key().public_bytes(*raw)
    token = jose.sign(CLAIMS, ours[alg], alg, "jwk-kid")
    assert jose.verify(token, {jwk["kid"]: (jwk["alg"], rebuilt)}, [jwk["alg"]]).claims == CLAIMS


@pytest.mark.parametrize("alg", ALL)
def test_public_jwk_of_another_key_does_not_verify(
    alg: str, ours: dict[str, jose.PrivateKey], attacker: dict[str, jose.PrivateKey]
) -> None:
    jwk = jose.public_jwk(attacker[alg].public_key(), "k", alg)
    token = jose.sign(CLAIMS, ours[alg], alg, "k")
    rejects(token, {"k": (alg, _key_from_jwk(jwk))})
