"""JWT access tokens (RFC 9068) and ID tokens (OIDC Core §2), issued and checked here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import jose
from .errors import InvalidToken
from .models import AccessTokenRecord, Client, User
from .provider import Provider
from .scopes import format_scope
from .secrets import b64url, new_secret

__all__ = ["IssuedAccessToken", "at_hash", "issue_access_token", "issue_id_token", "verify_access_token",
           "verify_id_token_hint"]


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    record: AccessTokenRecord
    expires_in: int


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def at_hash(access_token: str, alg: str) -> str:
    """Left half of the hash of the token (OIDC Core §3.1.3.6); Ed25519 pairs with SHA-512."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def issue_access_token(
    provider: Provider, *, client: Client, subject: str | None, scope: Iterable[str], grant_id: str | None,
    auth_time: datetime | None = None, audience: str | list[str] | None = None,
    userinfo_claims: Iterable[str] = (),
) -> IssuedAccessToken:
    now = provider.now()
    ttl = provider.settings.access_token_ttl
    scope = tuple(scope)
    jti = new_secret(16)
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": subject or client.client_id,
        "aud": audience or provider.settings.audience,
        "exp": _epoch(now) + ttl,
        "iat": _epoch(now),
        "jti": jti,
        "client_id": client.client_id,
        "scope": format_scope(scope),
    }
    if auth_time is not None:
        claims["auth_time"] = _epoch(auth_time)
    alg = provider.settings.access_token_alg
    key = provider.keys.signing_key(alg)
    token = jose.sign(claims, key.private_key, alg, key.kid, typ="at+jwt")
    record = AccessTokenRecord(jti=jti, grant_id=grant_id, client_id=client.client_id, user_id=subject,
                               scope=scope, expires_at=now + timedelta(seconds=ttl),
                               userinfo_claims=tuple(userinfo_claims))
    return IssuedAccessToken(token, record, ttl)


def issue_id_token(
    provider: Provider, *, client: Client, user: User, auth_time: datetime, nonce: str | None,
    access_token: str | None, acr: str | None, amr: Iterable[str], extra_claims: Mapping[str, Any] | None = None,
) -> str:
    now = provider.now()
    alg = client.id_token_signed_response_alg
    key = provider.keys.signing_key(alg)
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update({
        "iss": provider.issuer,
        "sub": user.id,
        "aud": client.client_id,
        "azp": client.client_id,
        "exp": _epoch(now) + provider.settings.id_token_ttl,
        "iat": _epoch(now),
        "auth_time": _epoch(auth_time),
    })
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, alg)
    if acr:
        claims["acr"] = acr
    amr = list(amr)
    if amr:
        claims["amr"] = amr
    return jose.sign(claims, key.private_key, alg, key.kid)


async def verify_access_token(provider: Provider, token: str) -> tuple[dict[str, Any], AccessTokenRecord]:
    """A JWT access token issued here, unexpired, for us, and not revoked; else `InvalidToken`."""
    try:
        verified = jose.verify(token, provider.keys.verification_keys, provider.keys.algorithms, typ="at+jwt")
    except jose.JOSEError as exc:
        raise InvalidToken("The access token is invalid", detail=str(exc)) from None
    claims = verified.claims
    now = _epoch(provider.now())
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if claims.get("iss") != provider.issuer:
        raise InvalidToken("The access token is invalid", detail="wrong issuer")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise InvalidToken("The access token expired")
    if provider.settings.audience not in audiences:
        raise InvalidToken("The access token is not meant for this endpoint")
    jti = claims.get("jti")
    record = await provider.store.get_active_access_token(jti, provider.now()) if isinstance(jti, str) else None
    if record is None:
        raise InvalidToken("The access token was revoked")
    return claims, record


def verify_id_token_hint(provider: Provider, token: str) -> dict[str, Any] | None:
    """Claims of an ID token this provider issued, expired or not (OIDC Core §3.1.2.1); None if not ours."""
    try:
        verified = jose.verify(token, provider.keys.verification_keys, provider.keys.algorithms)
    except jose.JOSEError:
        return None
    claims = verified.claims
    if str(verified.header.get("typ", "JWT")).lower() not in ("jwt", "application/jwt"):
        return None  # an access token (at+jwt) is not an ID token
    if claims.get("iss") != provider.issuer or not isinstance(claims.get("sub"), str):
        return None
    return claims
