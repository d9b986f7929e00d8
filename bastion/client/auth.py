"""Client authentication at the provider's endpoints (RFC 6749 §2.3, OIDC Core §9, RFC 7523).

`client_secret_basic` (the default with a secret), `client_secret_post`, `none` (public clients, which
send only `client_id`), and `private_key_jwt`: a short-lived assertion signed with the client's own
key, so that no shared secret exists at all.
"""

from __future__ import annotations

import base64
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..core import jose
from ..core.secrets import new_secret

__all__ = ["ASSERTION_TYPE", "METHODS", "ClientAuthentication", "basic_authorization"]

METHODS = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The `Authorization` value of client_secret_basic: both parts form-urlencoded before the Basic
    encoding (RFC 6749 §2.3.1), so that a secret with ':' or '%' works."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


@dataclass(frozen=True)
class ClientAuthentication:
    client_id: str
    method: str
    client_secret: str | None = field(default=None, repr=False)
    private_key: jose.PrivateKey | None = field(default=None, repr=False)
    key_id: str | None = None
    key_alg: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unsupported client authentication method {self.method!r}")
        if self.method.startswith("client_secret") and not self.client_secret:
            raise ValueError(f"{self.method} needs a client_secret")
        if self.method == "private_key_jwt" and (self.private_key is None or self.key_alg is None):
            raise ValueError("private_key_jwt needs a private_key (RSA, P-256 or Ed25519)")

    @classmethod
    def choose(cls, client_id: str, method: str | None, client_secret: str | None,
               private_key: jose.PrivateKey | None, key_id: str | None) -> ClientAuthentication:
        """The method the configuration implies unless one is named: a key, else a secret, else none."""
        alg = None
        if isinstance(private_key, rsa.RSAPrivateKey):
            alg = "RS256"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == "secp256r1":
            alg = "ES256"
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            alg = "EdDSA"
        if method is None:
            method = "private_key_jwt" if private_key else "client_secret_basic" if client_secret else "none"
        return cls(client_id, method, client_secret, private_key, key_id, alg)

    def apply(self, form: MutableMapping[str, Any], headers: MutableMapping[str, str], audience: str,
              now: float | None = None) -> None:
        """Add our credentials to a request's form and headers; `audience` is the provider's issuer."""
        if self.method == "client_secret_basic":
            assert self.client_secret is not None
            headers["Authorization"] = basic_authorization(self.client_id, self.client_secret)
            return
        form["client_id"] = self.client_id
        if self.method == "client_secret_post":
            assert self.client_secret is not None
            form["client_secret"] = self.client_secret
        elif self.method == "private_key_jwt":
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self.assertion(audience, time.time() if now is None else now)

    def assertion(self, audience: str, now: float) -> str:
        """RFC 7523 §3: iss = sub = client_id; `aud` is the issuer identifier, which every provider
        accepts and which (unlike an endpoint URL) cannot be replayed at another endpoint's audience
        check of a different provider; a unique `jti` and a one-minute lifetime."""
        assert self.private_key is not None and self.key_alg is not None
        issued = int(now)
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience, "jti": new_secret(16),
                  "iat": issued, "exp": issued + ASSERTION_LIFETIME}
        return jose.sign(claims, self.private_key, self.key_alg, self.key_id, typ="JWT")
