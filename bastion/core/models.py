"""The provider's records, named in the RFCs' words. Plain, immutable data; storage is elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AccessTokenRecord",
    "AuthorizationCode",
    "BrowserSession",
    "Client",
    "Consent",
    "DeviceAuthorization",
    "Grant",
    "Interaction",
    "RefreshToken",
    "User",
]


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client (RFC 7591 metadata names)."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str = "client_secret_basic"
    secret_hash: str | None = None
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code",)
    scope: tuple[str, ...] = ("openid", "profile", "email", "address", "phone", "offline_access")
    application_type: str = "web"
    id_token_signed_response_alg: str = "RS256"
    created_at: datetime | None = None
    resources: tuple[str, ...] = ()
    """Resource indicators (RFC 8707) this client may ask tokens for; for a resource server, its own."""
    access_token_format: str = "jwt"
    """`jwt` (RFC 9068) or `opaque` (a reference token, validated by introspection)."""
    permissions: tuple[str, ...] = ()
    """Extra rights, e.g. `introspect` for a resource server introspecting tokens meant for it."""
    refresh_token_policy: str = "offline_access"
    """When a refresh token is issued: `offline_access` (when granted) or `always`."""

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


@dataclass(frozen=True, slots=True)
class User:
    """An end-user; `id` is the stable, non-reassignable `sub` (OIDC Core §5.7)."""

    id: str
    username: str
    password_hash: str
    claims: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """Everything issued from one authorization: the unit of revocation (RFC 9700 §4.14.2)."""

    grant_id: str
    client_id: str
    user_id: str
    scope: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    auth_time: datetime | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    claims: dict[str, Any] | None = None
    resources: tuple[str, ...] = ()
    expires_at: datetime | None = None
    """The family's absolute end: no refresh token of this grant outlives it."""


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One link of a refresh-token family (RFC 6749 §6); only the hash is stored.

    `expires_at` is the earlier of its idle deadline and the family's absolute end, so rotating on
    every use is what keeps an active family alive.
    """

    token_hash: str
    grant_id: str
    client_id: str
    user_id: str
    scope: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A pending device authorization (RFC 8628 §3.2); only the device code's hash is stored.

    `status` moves pending → approved | denied, and approved → consumed, each by compare-and-set.
    """

    device_code_hash: str
    user_code: str
    client_id: str
    scope: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    interval: int
    resources: tuple[str, ...] = ()
    status: str = "pending"
    last_polled_at: datetime | None = None
    grant_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """RFC 6749 §4.1.2; only `code_hash` is stored, never the code."""

    code_hash: str
    grant_id: str
    client_id: str
    user_id: str
    redirect_uri: str
    code_challenge: str
    scope: tuple[str, ...]
    auth_time: datetime
    expires_at: datetime
    nonce: str | None = None
    claims: dict[str, Any] | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    session_id: str | None = None
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """What is kept of an issued JWT access token so that it can be revoked by `jti`."""

    jti: str
    grant_id: str | None
    client_id: str
    user_id: str | None
    scope: tuple[str, ...]
    expires_at: datetime
    revoked_at: datetime | None = None
    userinfo_claims: tuple[str, ...] = ()
    token_hash: str | None = None
    """Set for opaque access tokens, which are looked up by hash."""
    audience: tuple[str, ...] = ()
    """Claims the `claims` request parameter asked UserInfo to return (OIDC Core §5.5)."""


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A logged-in browser; the cookie holds a random id and the store only its hash."""

    session_hash: str
    user_id: str
    auth_time: datetime
    expires_at: datetime
    amr: tuple[str, ...] = ("pwd",)


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: str
    client_id: str
    scope: tuple[str, ...]
    granted_at: datetime


@dataclass(frozen=True, slots=True)
class Interaction:
    """A validated authorization request waiting for the user (login, consent).

    `binding_hash` ties it to the browser that started it (a cookie scoped to its path).
    """

    uid: str
    binding_hash: str
    request: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    login_at: datetime | None = None
    consent_given: bool = False
    user_id: str | None = None
    """Who logged in or consented here; a flag counts only for that user's session."""
