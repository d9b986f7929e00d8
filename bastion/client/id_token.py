"""ID token validation, OpenID Connect Core §3.1.3.7 (and §3.1.3.8, §12.2), as one pure function.

The signature is checked with our lean JWS (`bastion.core.jose`): only RS256, ES256 and EdDSA exist
there, so `none` and HMAC-with-the-public-key are impossible, and keys come only from the provider's
JWKS (never from `jku`, `x5u` or `jwk` headers). Claims checks follow in the order of §3.1.3.7.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..core import jose
from ..core.secrets import constant_time_equal
from ..core.tokens import at_hash
from .errors import InvalidIDToken

__all__ = ["Expectations", "UnknownKey", "at_hash", "validate_id_token"]


class UnknownKey(InvalidIDToken):
    """The token's `kid` is not in the JWKS we hold: refetch once, then give up."""


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the ID token must say, from our request and configuration."""

    issuer: str
    client_id: str
    algorithms: Collection[str]
    now: float
    leeway: float = 60
    nonce: str | None = None
    max_age: int | None = None
    require_auth_time: bool = False
    access_token: str | None = None
    subject: str | None = None  # on refresh: the same user as at login (§12.2)


def validate_id_token(token: Any, keys: Mapping[str, tuple[str, jose.PublicKey]],
                      expect: Expectations) -> dict[str, Any]:
    """The claims of `token` if every check passes; `InvalidIDToken` (or `UnknownKey`) saying which failed."""
    if not isinstance(token, str):
        raise InvalidIDToken("the ID token is not a string")
    try:
        verified = jose.verify(token, keys, expect.algorithms)
    except jose.JOSEError as exc:
        if str(exc) == "unknown key":
            raise UnknownKey("the ID token is signed with a key the provider does not publish") from None
        raise InvalidIDToken(f"the ID token is not acceptable: {exc}") from None
    if str(verified.header.get("typ", "JWT")).lower() not in ("jwt", "application/jwt"):
        raise InvalidIDToken("not an ID token (typ)")  # e.g. an RFC 9068 access token (at+jwt)
    claims = verified.claims
    _check_claims(claims, expect)
    if "at_hash" in claims and expect.access_token is not None:
        expected = at_hash(expect.access_token, verified.header["alg"])
        if not isinstance(claims["at_hash"], str) or not constant_time_equal(claims["at_hash"], expected):
            raise InvalidIDToken("at_hash does not match the access token")
    return claims


def _check_claims(claims: dict[str, Any], expect: Expectations) -> None:
    if claims.get("iss") != expect.issuer:
        raise InvalidIDToken("the ID token was issued by another issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidIDToken("the ID token has no subject")
    if expect.subject is not None and sub != expect.subject:
        raise InvalidIDToken("the ID token is about another subject")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if expect.client_id not in audiences:
        raise InvalidIDToken("the ID token is not meant for this client (aud)")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != expect.client_id:
        raise InvalidIDToken("the ID token was issued to another party (azp)")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not jose.is_numeric_date(exp) or exp + expect.leeway <= expect.now:
        raise InvalidIDToken("the ID token has expired")
    if not jose.is_numeric_date(iat) or iat - expect.leeway > expect.now:
        raise InvalidIDToken("the ID token was issued in the future (iat)")
    nonce = claims.get("nonce")
    if expect.nonce is not None and (not isinstance(nonce, str) or not constant_time_equal(nonce, expect.nonce)):
        raise InvalidIDToken("the ID token's nonce is missing or not ours (replay?)")
    auth_time = claims.get("auth_time")
    if expect.max_age is not None or expect.require_auth_time or auth_time is not None:
        if not jose.is_numeric_date(auth_time):
            raise InvalidIDToken("the ID token lacks a valid auth_time")
        if expect.max_age is not None and auth_time + expect.max_age + expect.leeway < expect.now:
            raise InvalidIDToken("the user authenticated longer ago than max_age allows")
