"""`TokenValidator`: JWT access tokens (RFC 9068) checked against the issuer's JWKS.

Works against any standard provider. The JWKS is cached for `cache_ttl` seconds; a token with an
unknown `kid` (the provider rotated its keys) triggers one refetch, at most once per
`refetch_interval`, so that an attacker spraying random kids cannot make us hammer the provider.
Keys come only from the configured issuer's JWKS: `jku`, `x5u` and `jwk` headers are never
followed, unknown `crit` headers are refused, `none` and HMAC algorithms do not exist here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..core import jose

__all__ = ["AccessToken", "InsufficientScope", "InvalidToken", "TokenValidator"]

DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
TIMEOUT = httpx.Timeout(5.0)


class InvalidToken(Exception):
    """RFC 6750 `invalid_token` (401): missing, malformed, expired, or not for this API."""

    error = "invalid_token"
    status = 401


class InsufficientScope(Exception):
    """RFC 6750 `insufficient_scope` (403)."""

    error = "insufficient_scope"
    status = 403


@dataclass(frozen=True, slots=True)
class AccessToken:
    claims: dict[str, Any]
    scopes: frozenset[str]
    subject: str
    client_id: str | None

    def require_scopes(self, *scopes: str) -> None:
        missing = set(scopes) - self.scopes
        if missing:
            raise InsufficientScope(f"missing scope: {' '.join(sorted(missing))}")


@dataclass
class _KeyCache:
    keys: dict[str, tuple[str, jose.PublicKey]] = field(default_factory=dict)
    fetched_at: float = float("-inf")


class TokenValidator:
    """Validate JWT access tokens for one API (`audience`) of one `issuer`."""

    def __init__(self, issuer: str, audience: str, *, algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
                 jwks_uri: str | None = None, leeway: int = 30, require_typ: bool = True,
                 cache_ttl: float = 300, refetch_interval: float = 30,
                 http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time) -> None:
        self.issuer, self.audience = issuer, audience
        self.algorithms = tuple(a for a in algorithms if a in jose.ALGORITHMS)
        self.leeway, self.require_typ = leeway, require_typ
        self.cache_ttl, self.refetch_interval = cache_ttl, refetch_interval
        self._jwks_uri = jwks_uri
        self._http = http
        self._clock = clock
        self._cache = _KeyCache()

    async def validate(self, token: str) -> AccessToken:
        """The token's claims if it is genuine, current and for this audience; else `InvalidToken`."""
        now = self._clock()
        if now - self._cache.fetched_at > self.cache_ttl:
            await self._refresh(now)
        try:
            return self._check(token, now)
        except _UnknownKey:
            if now - self._cache.fetched_at < self.refetch_interval:
                raise InvalidToken("unknown signing key") from None
            await self._refresh(now)
            try:
                return self._check(token, now)
            except _UnknownKey:
                raise InvalidToken("unknown signing key") from None

    def _check(self, token: str, now: float) -> AccessToken:
        try:
            verified = jose.verify(token, self._cache.keys, self.algorithms,
                                   typ="at+jwt" if self.require_typ else None)
        except jose.JOSEError as exc:
            if str(exc) == "unknown key":
                raise _UnknownKey from None
            raise InvalidToken(str(exc)) from None
        claims = verified.claims
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        exp, iat, nbf, sub = claims.get("exp"), claims.get("iat"), claims.get("nbf"), claims.get("sub")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer")
        if self.audience not in audiences:
            raise InvalidToken("not meant for this audience")
        if not isinstance(exp, int | float) or exp + self.leeway <= now:
            raise InvalidToken("expired")
        if not isinstance(iat, int | float) or iat - self.leeway > now:
            raise InvalidToken("issued in the future")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf - self.leeway > now):
            raise InvalidToken("not yet valid")
        if not isinstance(sub, str):
            raise InvalidToken("no subject")
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        client_id = claims.get("client_id")
        return AccessToken(claims, scopes, sub, client_id if isinstance(client_id, str) else None)

    async def _get_json(self, url: str) -> Any:
        client = self._http or httpx.AsyncClient(timeout=TIMEOUT)
        try:
            response = await client.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise InvalidToken("the provider's keys could not be fetched") from exc
        finally:
            if self._http is None:
                await client.aclose()

    async def _refresh(self, now: float) -> None:
        self._cache.fetched_at = now  # also on failure: the rate limit holds while the provider is down
        if self._jwks_uri is None:
            meta = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if not isinstance(meta, dict) or meta.get("issuer") != self.issuer or not isinstance(
                    meta.get("jwks_uri"), str):
                raise InvalidToken("the provider's metadata does not match the issuer")
            self._jwks_uri = meta["jwks_uri"]
        document = await self._get_json(self._jwks_uri)
        entries = document.get("keys") if isinstance(document, dict) else None
        keys: dict[str, tuple[str, jose.PublicKey]] = {}
        for entry in entries if isinstance(entries, list) else []:
            parsed = jose.key_from_jwk(entry) if isinstance(entry, dict) else None
            if parsed is not None:
                keys[parsed[0]] = (parsed[1], parsed[2])
        self._cache.keys = keys


class _UnknownKey(Exception):
    pass
