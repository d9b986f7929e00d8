"""Plain data the client hands out: what to keep between redirect and callback, and the tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ClientError

__all__ = ["AuthorizationRequest", "DeviceAuthorization", "TokenSet"]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One login in flight: send the user to `url`, keep the rest (server-side) until the callback.

    `to_dict`/`from_dict` give a JSON-safe form for a session store. Never put it in a cookie the
    browser can read: the code verifier is what makes a stolen code useless (RFC 7636).
    """

    url: str
    state: str
    nonce: str | None
    code_verifier: str = field(repr=False)
    redirect_uri: str
    max_age: int | None = None
    scope: str = "openid"
    resource: tuple[str, ...] = ()  # RFC 8707: sent again with the code, for a token meant for it

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resource": list(self.resource)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        try:
            request = cls(**{**data, "resource": tuple(data.get("resource", ()))})
        except TypeError as exc:
            raise ClientError("not a stored authorization request") from exc
        if not all(isinstance(v, str) for v in (request.url, request.state, request.code_verifier,
                                                 request.redirect_uri)):
            raise ClientError("not a stored authorization request")
        return request


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A token response (RFC 6749 §5.1), validated. `claims` are the verified ID token's, if any.

    Tokens stay out of `repr`, so that logging a TokenSet leaks nothing.
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_at: float | None
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    claims: Mapping[str, Any] | None = None
    scope: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def subject(self) -> str | None:
        """The user the ID token is about (its `sub`), if an ID token came with the tokens."""
        sub = self.claims.get("sub") if self.claims else None
        return sub if isinstance(sub, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split()) if self.scope else frozenset()

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at is not None and self.expires_at - seconds <= now

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form for a server-side store (it holds the tokens: never put it in a cookie)."""
        return {**asdict(self), "claims": dict(self.claims) if self.claims is not None else None,
                "raw": dict(self.raw)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        try:
            tokens = cls(**data)
        except TypeError as exc:
            raise ClientError("not a stored token set") from exc
        if not isinstance(tokens.access_token, str) or not isinstance(tokens.token_type, str):
            raise ClientError("not a stored token set")
        return tokens


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: show `user_code` and `verification_uri` (or a QR code of the complete URI)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: int
