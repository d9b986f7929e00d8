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
from .scopes import format_scope, parse_scope
from .secrets import b64url, hash_secret, new_secret

__all__ = [
    "ActiveAccessToken",
    "IssuedAccessToken",
    "at_hash",
    "issue_access_token",
    "issue_id_token",
    "resolve_access_token",
    "verify_access_token",
    "verify_id_token_hint",
]


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    record: AccessTokenRecord | None
    """What must be stored: always for opaque tokens and tokens of a user's grant (so that revoking
    the grant reaches them); None for a JWT nobody needs to find again (client credentials)."""
    expires_in: int


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def at_hash(access_token: str, alg: str) -> str:
    """Left half of the hash of the token (OIDC Core §3.1.3.6); Ed25519 pairs with SHA-512."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def issue_access_token(
    provider: Provider, *, client: Client, subject: str | None, scope: Iterable[str], grant_id: str | None,
    auth_time: datetime | None = None, resources: Iterable[str] = (), userinfo_claims: Iterable[str] = (),
) -> IssuedAccessToken:
    """An RFC 9068 JWT, or an opaque reference token if the client is registered for them.

    `aud` is the requested resources (RFC 8707), else the configured default audience.
    """
    now = provider.now()
    ttl = provider.settings.access_token_ttl
    scope = tuple(scope)
    audience = tuple(resources) or (provider.settings.audience,)
    jti = new_secret(16)
    expires_at = now + timedelta(seconds=ttl)
    if client.access_token_format == "opaque":
        token = new_secret(32)
        opaque = AccessTokenRecord(jti=jti, grant_id=grant_id, client_id=client.client_id, user_id=subject,
                                   scope=scope, expires_at=expires_at, userinfo_claims=tuple(userinfo_claims),
                                   token_hash=hash_secret(token), audience=audience)
        return IssuedAccessToken(token, opaque, ttl)
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": subject or client.client_id,
        "aud": audience[0] if len(audience) == 1 else list(audience),
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
    record: AccessTokenRecord | None = None
    if grant_id is not None:
        record = AccessTokenRecord(jti=jti, grant_id=grant_id, client_id=client.client_id, user_id=subject,
                                   scope=scope, expires_at=expires_at, userinfo_claims=tuple(userinfo_claims),
                                   audience=audience)
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


@dataclass(frozen=True, slots=True)
class ActiveAccessToken:
    """An access token that is genuine, unexpired and not revoked, whatever its format."""

    jti: str
    subject: str
    client_id: str
    scope: tuple[str, ...]
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    user_id: str | None
    """The end-user, for tokens of a user's grant; None for client-credentials tokens."""
    record: AccessTokenRecord | None
    user: User | None = None
    """The end-user's record, read with the token (None also when the user is gone)."""


def _issued_to_registered_client(client_registered_at: datetime | None, issued_at: int) -> bool:
    """A token ends with its client (`client_registered_at` None: gone), and a client_id registered again
    does not revive old tokens. Always read from the store with the token, never from a per-process
    cache: a deletion by another process counts at once."""
    return client_registered_at is not None and issued_at >= _epoch(client_registered_at)


async def resolve_access_token(provider: Provider, token: str) -> ActiveAccessToken | None:
    """Look a presented access token up: a JWT by signature and jti denylist, an opaque one by hash."""
    now = provider.now()
    if token.count(".") == 2:
        try:
            claims = jose.verify(token, provider.keys.verification_keys, provider.keys.algorithms,
                                 typ="at+jwt").claims
        except jose.JOSEError:
            return None
        jti, sub, client_id, exp, iat = (claims.get(k) for k in ("jti", "sub", "client_id", "exp", "iat"))
        if (claims.get("iss") != provider.issuer or not isinstance(jti, str) or not isinstance(sub, str)
                or not isinstance(client_id, str) or not isinstance(exp, int) or not isinstance(iat, int)
                or exp <= _epoch(now)):
            return None
        found = await provider.store.get_access_token_with_owners(jti=jti)
        if found is None:  # unrecorded: a client-credentials token (a user's grant's tokens are all recorded)
            client = await provider.store.get_client(client_id)
            record, registered_at, user = None, client.created_at if client else None, None
        else:
            record, registered_at, user = found
        if record is not None and (record.revoked_at is not None or record.client_id != client_id):
            return None
        if not _issued_to_registered_client(registered_at, iat):
            return None
        aud = claims.get("aud")
        audience = tuple(a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str))
        return ActiveAccessToken(jti, sub, client_id, parse_scope(claims.get("scope")), audience, iat, exp,
                                 record.user_id if record else None, record, user)
    if not 20 <= len(token) <= 100:
        return None
    found = await provider.store.get_access_token_with_owners(token_hash=hash_secret(token))
    if found is None:
        return None
    record, registered_at, user = found
    exp = _epoch(record.expires_at)
    iat = exp - provider.settings.access_token_ttl
    if record.revoked_at is not None or record.expires_at <= now:
        return None
    if not _issued_to_registered_client(registered_at, iat):
        return None
    return ActiveAccessToken(record.jti, record.user_id or record.client_id, record.client_id, record.scope,
                             record.audience, iat, exp, record.user_id, record, user)


async def verify_access_token(provider: Provider, token: str) -> ActiveAccessToken:
    """An active access token meant for this provider's own endpoints (UserInfo); else `InvalidToken`."""
    active = await resolve_access_token(provider, token)
    if active is None:
        raise InvalidToken("The access token is invalid, expired or revoked")
    if provider.settings.audience not in active.audience:
        raise InvalidToken("The access token is not meant for this endpoint")
    return active


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
