"""Test helpers for the unit tests of `bastion.client`: keys, documents, forged tokens, a scriptable
fake provider, and a clock and `sleep` that tests control.

Tokens the provider would issue are signed with `jose.sign`; tokens with headers `jose.sign` cannot
write (`none`, HS256, `crit`, `jwk`, a JSON array payload) are assembled here by hand and signed with
`cryptography` directly (`raw_token`), so that a forged token fails for the reason a test names and
not because it was assembled differently from a real one (`test_hand_made_token_is_accepted`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bastion.client import AsyncClient, AuthorizationRequest, Client
from bastion.core import jose

ISSUER = "https://op.example"
CLIENT_ID = "app-1"
CLIENT_SECRET = "client-secret-CS9f2b7d1e"
REDIRECT_URI = "https://app.example/callback"
NOW = 1_750_000_000.0

# Distinctive values, so that a test can look for them in messages and reprs.
STATE = "state-ST4a8c2e"
NONCE = "nonce-NO7d3f1b"
CODE = "code-CD5e9a4c"
VERIFIER = "verifier-VR1c6b8d-" + "v" * 30
ACCESS_TOKEN = "access-AT8b2d6f"
REFRESH_TOKEN = "refresh-RT3e7a9c"
DEVICE_CODE = "device-DC6f1d3b"
SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, CODE, VERIFIER, DEVICE_CODE, CLIENT_SECRET)


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: jose.PrivateKey

    @property
    def public(self) -> jose.PublicKey:
        return self.private.public_key()

    @property
    def jwk(self) -> dict[str, str]:
        return jose.public_jwk(self.public, self.kid, self.alg)


def new_keys(prefix: str) -> dict[str, SigningKey]:
    """One key per algorithm, kids `<prefix>-rsa`, `<prefix>-ec`, `<prefix>-ed`."""
    return {
        "RS256": SigningKey(f"{prefix}-rsa", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ES256": SigningKey(f"{prefix}-ec", "ES256", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA": SigningKey(f"{prefix}-ed", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
    }


KEYS = new_keys("op")  # the provider's published keys
ATTACKER = new_keys("evil")  # keys nobody published
ALGS = tuple(KEYS)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk for k in (keys or tuple(KEYS.values()))]}


def key_map(*keys: SigningKey) -> dict[str, tuple[str, jose.PublicKey]]:
    """What `validate_id_token` takes: kid -> (alg, public key)."""
    return {k.kid: (k.alg, k.public) for k in (keys or tuple(KEYS.values()))}


# --- documents and tokens -----------------------------------------------------------------------


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides`; an override of None removes the member."""
    merged = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not None}


def discovery(issuer: str = ISSUER, **overrides: Any) -> dict[str, Any]:
    return _merge({
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "device_authorization_endpoint": f"{issuer}/device",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": list(ALGS),
        "authorization_response_iss_parameter_supported": True,
    }, overrides)


def id_claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    return _merge({"iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "iat": int(now), "exp": int(now) + 300,
                   "nonce": NONCE}, overrides)


def id_token(claims: dict[str, Any] | None = None, alg: str = "RS256", *, key: SigningKey | None = None,
             typ: str = "JWT") -> str:
    """A token as the provider signs it (`jose.sign`), by its key for `alg` unless `key` is given."""
    key = key or KEYS[alg]
    return jose.sign(id_claims() if claims is None else claims, key.private, key.alg, key.kid, typ=typ)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def signature(key: jose.PrivateKey, data: bytes) -> bytes:
    """The JWS signature of `data` for the key's type (ES256 as raw r||s, RFC 7518 §3.4)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(data)


def raw_token(header: dict[str, Any], payload: Any, key: jose.PrivateKey | None = None,
              signature_bytes: bytes | None = None) -> str:
    """A compact JWS assembled by hand: signed by `key` over exactly these segments, or carrying
    `signature_bytes` (empty for an unsigned token)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    if key is not None:
        signature_bytes = signature(key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64(signature_bytes or b'')}"


# --- a provider that answers what a test tells it to ---------------------------------------------

Answer = httpx.Response | Exception | Callable[[httpx.Request], "httpx.Response | Exception"]


def json_response(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def text_response(text: str, status: int = 200, content_type: str = "text/html", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers={"content-type": content_type, **headers})


def token_body(id_token: str | None = None, **overrides: Any) -> dict[str, Any]:
    return _merge({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600,
                   "refresh_token": REFRESH_TOKEN, "scope": "openid", "id_token": id_token}, overrides)


class FakeProvider:
    """An `httpx.MockTransport` handler: discovery at the OIDC well-known path and the JWKS by
    default, and for any path the answers queued with `on()` (the last one repeats). Every request
    is recorded in `requests`."""

    def __init__(self, metadata: dict[str, Any] | None = None, keys: dict[str, Any] | None = None) -> None:
        self.metadata = discovery() if metadata is None else metadata
        self.jwks = jwks() if keys is None else keys
        self.requests: list[httpx.Request] = []
        self.queues: dict[str, list[Answer]] = {}

    def on(self, path: str, *answers: Answer) -> FakeProvider:
        self.queues[path] = list(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        queue = self.queues.get(path)
        answer: Answer
        if queue:
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        elif path == "/.well-known/openid-configuration":
            answer = json_response(self.metadata)
        elif path == "/jwks":
            answer = json_response(self.jwks)
        else:
            answer = httpx.Response(404)
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        # A fresh copy each time: a queued answer may be sent more than once.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def hits(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.read().decode("ascii"), keep_blank_values=True)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def client(fake: FakeProvider, *, issuer: str = ISSUER, client_secret: str | None = CLIENT_SECRET,
           clock: Clock | None = None, **kwargs: Any) -> Iterator[Client]:
    """A `Client` on `fake`, with a fixed clock unless one is given."""
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        yield Client(issuer, CLIENT_ID, client_secret, redirect_uri=REDIRECT_URI, http=http,
                     clock=clock or Clock(), **kwargs)


@asynccontextmanager
async def async_client(fake: FakeProvider, *, clock: Clock | None = None, **kwargs: Any) -> AsyncIterator[AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as http:
        yield AsyncClient(ISSUER, CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI, http=http,
                          clock=clock or Clock(), **kwargs)


def sleeper(clock: Clock, sleeps: list[float]) -> Callable[[float], None]:
    """A `sleep=` for a Client: records each wait and advances `clock` instead of waiting."""

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    return sleep


def login(*, nonce: str | None = NONCE, max_age: int | None = None, state: str = STATE,
          scope: str = "openid") -> AuthorizationRequest:
    """A login in flight, as `start_authorization` would have stored it."""
    return AuthorizationRequest(f"{ISSUER}/authorize?state={state}", state, nonce, VERIFIER, REDIRECT_URI,
                                max_age, scope)


def callback(*, state: str | None = STATE, code: str | None = CODE, iss: str | None = ISSUER,
             **extra: str) -> str:
    params = {"code": code, "state": state, "iss": iss, **extra}
    return f"{REDIRECT_URI}?{urlencode({k: v for k, v in params.items() if v is not None})}"
