"""`TokenValidator`: JWT access tokens (RFC 9068) checked against the issuer's JWKS, opaque ones introspected.

Works against any standard provider. The JWKS is cached for `cache_ttl` seconds; a token with an
unknown `kid` (the provider rotated its keys) triggers one refetch, at most once per
`refetch_interval`, so that an attacker spraying random kids cannot make us hammer the provider.
Keys come only from the configured issuer's JWKS: `jku`, `x5u` and `jwk` headers are never
followed, unknown `crit` headers are refused, `none` and HMAC algorithms do not exist here.

A token that is not a JWT is sent to the provider's introspection endpoint (RFC 7662) when
`introspection=(client_id, client_secret)` is configured; answers are cached for
`introspection_ttl` seconds (never past the token's `exp`), so a revocation takes at most that long
to be noticed: the usual trade-off between one HTTP round trip per request and freshness.

The protocol is written once, sans-I/O: `_flow` is a generator that yields the `httpx.Request`s it
needs and receives their responses; `validate` (async) and `validate_sync` only carry them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..client.auth import basic_authorization
from ..core import jose
from ..sansio import Flow as _Flow
from ..sansio import drive_async, drive_sync, request

__all__ = ["AccessToken", "InsufficientScope", "InvalidToken", "MissingToken", "TokenValidator"]

DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
RFC9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
TIMEOUT = httpx.Timeout(5.0)
MAX_TOKEN_LENGTH = 16384
INTROSPECTION_CACHE_SIZE = 10_000
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 §2.1 `b64token`: the only shape a bearer token can have, checked before any I/O."""


class InvalidToken(Exception):
    """RFC 6750 `invalid_token` (401): missing, malformed, expired, or not for this API."""

    error = "invalid_token"
    status = 401


class MissingToken(InvalidToken):
    """No bearer token at all: still a 401, but RFC 6750 §3.1 wants no `error` in the challenge then."""


class InsufficientScope(Exception):
    """RFC 6750 `insufficient_scope` (403); `scopes` are those the resource needs, for the challenge."""

    error = "insufficient_scope"
    status = 403

    def __init__(self, message: str, scopes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.scopes = tuple(scopes)


@dataclass(frozen=True, slots=True)
class AccessToken:
    claims: dict[str, Any]
    scopes: frozenset[str]
    subject: str
    client_id: str | None

    def require_scopes(self, *scopes: str) -> None:
        missing = set(scopes) - self.scopes
        if missing:
            raise InsufficientScope(f"missing scope: {' '.join(sorted(missing))}", scopes)


@dataclass
class _KeyCache:
    keys: dict[str, tuple[str, jose.PublicKey]] = field(default_factory=dict)
    fetched_at: float = float("-inf")


class _UnknownKey(Exception):
    pass


def _request(method: str, url: str, **kwargs: Any) -> httpx.Request:
    return request(method, url, TIMEOUT, **kwargs)


def _unreachable(exc: httpx.HTTPError) -> InvalidToken:
    return InvalidToken("the provider could not be reached")


def _json(response: httpx.Response | None, failure: str) -> Any:
    """The body of a successful JSON response; anything else is the provider's failure, not a KeyError."""
    if response is None or not response.is_success:
        raise InvalidToken(failure)
    try:
        return response.json()
    except ValueError:
        raise InvalidToken(failure) from None


def _access_token(claims: dict[str, Any]) -> AccessToken:
    sub, scope, client_id = claims.get("sub"), claims.get("scope"), claims.get("client_id")
    if not isinstance(sub, str):
        raise InvalidToken("no subject")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    return AccessToken(claims, scopes, sub, client_id if isinstance(client_id, str) else None)


class TokenValidator:
    """Validate the access tokens of one API (`audience`) of one `issuer`."""

    def __init__(self, issuer: str, audience: str, *, algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
                 jwks_uri: str | None = None, leeway: int = 30, require_typ: bool = True,
                 required_claims: Iterable[str] | None = None,
                 cache_ttl: float = 300, refetch_interval: float = 30,
                 introspection: tuple[str, str] | None = None, introspection_ttl: float = 30,
                 http: httpx.AsyncClient | None = None, sync_http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer, self.audience = issuer, audience
        self.algorithms = tuple(a for a in algorithms if a in jose.ALGORITHMS)
        self.leeway, self.require_typ = leeway, require_typ
        # RFC 9068 §2.2 makes all of these mandatory; providers that predate it (require_typ=False,
        # e.g. Keycloak's "JWT"-typed tokens) are held to the ones every JWT access token carries.
        self.required_claims = tuple(required_claims if required_claims is not None
                                     else RFC9068_CLAIMS if require_typ else ("iss", "exp", "aud", "sub", "iat"))
        self.cache_ttl, self.refetch_interval = cache_ttl, refetch_interval
        self.introspection_ttl = introspection_ttl
        self._jwks_uri = jwks_uri
        self._metadata: dict[str, Any] | None = None
        self._basic = basic_authorization(*introspection) if introspection is not None else None
        self._http, self._sync_http = http, sync_http
        self._clock = clock
        self._cache = _KeyCache()
        self._introspected: dict[bytes, tuple[AccessToken | str, float]] = {}

    async def validate(self, token: str) -> AccessToken:
        """The token's claims if it is genuine, current and for this audience; else `InvalidToken`."""
        cached = self._with_cached_key(token)
        return cached if cached is not None else await drive_async(self._flow(token), self._http, _unreachable)

    def validate_sync(self, token: str) -> AccessToken:
        """`validate` for synchronous code (Flask, Django), on `httpx.Client`."""
        cached = self._with_cached_key(token)
        return cached if cached is not None else drive_sync(self._flow(token), self._sync_http, _unreachable)

    def _with_cached_key(self, token: str) -> AccessToken | None:
        """The common case without the flow's machinery: a JWT whose key is cached and fresh.
        None sends the token down the full flow (fetch, refetch, introspection), which decides."""
        now = self._clock()
        if (type(token) is not str or token.count(".") != 2 or len(token) > MAX_TOKEN_LENGTH
                or now - self._cache.fetched_at > self.cache_ttl):
            return None
        try:
            return self._check(token, now)
        except _UnknownKey:
            return None

    def _flow(self, token: str) -> _Flow[AccessToken]:
        now = self._clock()
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        if token.count(".") != 2:
            if self._basic is None or not B64TOKEN.fullmatch(token):
                raise InvalidToken("malformed token")
            return (yield from self._introspect(token, now))
        if now - self._cache.fetched_at > self.cache_ttl:
            yield from self._refresh(now)
        try:
            return self._check(token, now)
        except _UnknownKey:
            # Rate-limited once keys are known; before that (a first fetch still in flight in another
            # request, or a failed one) fetching is the only way to validate at all.
            if self._cache.keys and now - self._cache.fetched_at < self.refetch_interval:
                raise InvalidToken("unknown signing key") from None
            yield from self._refresh(now)
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
        for name in self.required_claims:
            if name not in claims:
                raise InvalidToken(f"the token lacks the {name} claim")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer")
        self._check_audience(claims.get("aud"))
        if not jose.is_numeric_date(exp) or exp + self.leeway <= now:
            raise InvalidToken("expired")
        if not jose.is_numeric_date(iat) or iat - self.leeway > now:
            raise InvalidToken("issued in the future")
        if nbf is not None and (not jose.is_numeric_date(nbf) or nbf - self.leeway > now):
            raise InvalidToken("not yet valid")
        return _access_token(claims)

    def _check_audience(self, aud: Any) -> None:
        audiences: Collection[Any] = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise InvalidToken("not meant for this audience")

    def _discover(self) -> _Flow[dict[str, Any]]:
        """The issuer's metadata, fetched once; a document naming another issuer is refused (mix-up)."""
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            meta = _json((yield _request("GET", url)), "the provider's metadata could not be fetched")
            if not isinstance(meta, dict) or meta.get("issuer") != self.issuer:
                raise InvalidToken("the provider's metadata does not match the issuer")
            self._metadata = meta
        return self._metadata

    def _refresh(self, now: float) -> _Flow[None]:
        self._cache.fetched_at = now  # also on failure: the rate limit holds while the provider is down
        if self._jwks_uri is None:
            jwks_uri = (yield from self._discover()).get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise InvalidToken("the provider's metadata does not match the issuer")
            self._jwks_uri = jwks_uri
        document = _json((yield _request("GET", self._jwks_uri)), "the provider's keys could not be fetched")
        self._cache.keys = jose.keys_from_jwks(document)

    def _introspect(self, token: str, now: float) -> _Flow[AccessToken]:
        key = hashlib.sha256(token.encode("ascii")).digest()  # the cache holds no usable bearer tokens
        cached = self._introspected.get(key)
        if cached is not None and cached[1] > now:
            outcome = cached[0]
        else:
            endpoint = (yield from self._discover()).get("introspection_endpoint")
            if not isinstance(endpoint, str) or self._basic is None:
                raise InvalidToken("the provider offers no introspection")
            response = yield _request("POST", endpoint, data={"token": token, "token_type_hint": "access_token"},
                                      headers={"Authorization": self._basic, "Accept": "application/json"})
            body = _json(response, "the token could not be introspected")  # not cached: the provider's fault
            try:
                outcome = self._from_introspection(body if isinstance(body, dict) else {}, now)
            except InvalidToken as exc:
                outcome = str(exc)
            until = now + self.introspection_ttl
            if isinstance(outcome, AccessToken) and jose.is_numeric_date(exp := outcome.claims.get("exp")):
                until = min(until, exp)
            self._remember(key, outcome, until)
        if isinstance(outcome, str):
            raise InvalidToken(outcome)
        return outcome

    def _from_introspection(self, body: dict[str, Any], now: float) -> AccessToken:
        if body.get("active") is not True:
            raise InvalidToken("inactive token")
        if body.get("iss", self.issuer) != self.issuer:
            raise InvalidToken("wrong issuer")
        self._check_audience(body.get("aud"))
        exp = body.get("exp")
        if exp is not None and (not jose.is_numeric_date(exp) or exp + self.leeway <= now):
            raise InvalidToken("expired")
        return _access_token(body)

    def _remember(self, key: bytes, outcome: AccessToken | str, until: float) -> None:
        """Bounded, so that a spray of random tokens costs memory only up to a limit: oldest out first."""
        self._introspected.pop(key, None)
        if len(self._introspected) >= INTROSPECTION_CACHE_SIZE:
            del self._introspected[next(iter(self._introspected))]
        self._introspected[key] = (outcome, until)
