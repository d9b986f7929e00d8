"""In-process: `TokenValidator` verifications per second beside PyJWT and the bare `cryptography` floor.

Each case validates the same RFC 9068 access token over and over with a cached key: the validator
with every check on (signature, typ, iss, aud, exp, iat, nbf, required claims), PyJWT's `jwt.decode`
with the same checks, and the floor, `cryptography`'s signature verification alone on bytes prepared
in advance. Rounds alternate between the three so that a noisy neighbour hurts them alike; the best
round counts. Prints one Markdown table of rates and ratios to the floor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from bastion.core import jose
from bastion.resource import TokenValidator

ISSUER = "https://op.example"
API = "https://api.example"
ROUNDS = 5
SECONDS_PER_ROUND = 0.4


def _keys() -> dict[str, jose.PrivateKey]:
    return {"RS256": rsa.generate_private_key(65537, 2048), "ES256": ec.generate_private_key(ec.SECP256R1()),
            "EdDSA": ed25519.Ed25519PrivateKey.generate()}


def _token(alg: str, key: jose.PrivateKey) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": API, "sub": "user-1", "client_id": "svc", "jti": "j1", "scope": "read",
              "iat": now, "exp": now + 3600}
    return jose.sign(claims, key, alg, f"k-{alg}", typ="at+jwt")


def _validator(keys: dict[str, jose.PrivateKey]) -> TokenValidator:
    jwks = {"keys": [jose.public_jwk(k.public_key(), f"k-{alg}", alg) for alg, k in keys.items()]}

    def provider(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks)

    http = httpx.Client(transport=httpx.MockTransport(provider))
    return TokenValidator(ISSUER, API, jwks_uri=f"{ISSUER}/jwks", sync_http=http)


def _floor(alg: str, key: jose.PrivateKey, token: str) -> Callable[[], Any]:
    head, payload, sig = token.split(".")
    data, signature = f"{head}.{payload}".encode(), jose.b64url_decode(sig)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return lambda: public.verify(signature, data, padding.PKCS1v15(), SHA256())
    if isinstance(public, ec.EllipticCurvePublicKey):
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        return lambda: public.verify(der, data, ec.ECDSA(SHA256()))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return lambda: public.verify(signature, data)


def _pyjwt(alg: str, key: jose.PrivateKey, token: str) -> Callable[[], Any]:
    public = key.public_key()
    options = {"require": ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]}

    def decode() -> Any:
        header = jwt.get_unverified_header(token)  # what a resource server does to pick the key and check typ
        if header.get("typ") != "at+jwt":
            raise ValueError("typ")
        return jwt.decode(token, public, algorithms=[alg], audience=API, issuer=ISSUER, leeway=30, options=options)

    return decode


def _rate(fn: Callable[[], Any]) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + SECONDS_PER_ROUND
    while True:
        for _ in range(50):
            fn()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def measure() -> list[dict[str, Any]]:
    keys = _keys()
    validator = _validator(keys)
    rows = []
    for alg, key in keys.items():
        token = _token(alg, key)
        validator.validate_sync(token)  # fetch the JWKS once; from here on the key is cached
        cases = {"floor": _floor(alg, key, token), "bastion": lambda t=token: validator.validate_sync(t),
                 "pyjwt": _pyjwt(alg, key, token)}
        for fn in cases.values():
            fn()
        best = dict.fromkeys(cases, 0.0)
        for _ in range(ROUNDS):
            for name, fn in cases.items():
                best[name] = max(best[name], _rate(fn))
        rows.append({"alg": alg, **best})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| token | floor (cryptography) /s | TokenValidator /s | PyJWT /s | TokenValidator / floor "
             "| PyJWT / floor |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['alg']} | {r['floor']:,.0f} | {r['bastion']:,.0f} | {r['pyjwt']:,.0f} "
                     f"| **{r['bastion'] / r['floor']:.2f}×** | {r['pyjwt'] / r['floor']:.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    results = measure()
    print(table(results))
    print(json.dumps(results))
