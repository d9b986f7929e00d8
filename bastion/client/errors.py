"""Every way a relying-party operation fails, as one hierarchy under `ClientError`.

    ClientError
    ├── NetworkError                  the provider could not be reached (Timeout for timeouts)
    ├── InvalidResponse               the provider's answer is malformed or breaks the protocol
    │   ├── DiscoveryError            unusable metadata, or metadata naming another issuer
    │   ├── InvalidIDToken            the ID token failed a check of OpenID Connect Core §3.1.3.7
    │   └── SubjectMismatch           UserInfo is about another user than the ID token
    ├── CallbackError                 the redirect back to us cannot be trusted
    │   ├── StateMismatch             not the answer to our request (CSRF, or a stale tab)
    │   └── IssuerMismatch            RFC 9207: the answer comes from another provider (mix-up)
    └── ProviderError                 the provider said no, with an RFC error code (`.error`)
        ├── AccessDenied, LoginRequired, ConsentRequired, InteractionRequired,
        │   AccountSelectionRequired, InvalidScope, UnauthorizedClient, ServerError,
        │   TemporarilyUnavailable, InvalidRequest, InvalidClient, InvalidTarget,
        │   UnsupportedGrantType, ExpiredToken, InvalidToken, InsufficientScope
        └── InvalidGrant
            └── RefreshTokenRevoked   a refresh was refused: the user must log in again

Messages are safe to log and show: they never contain a token, a code or a secret, and text from the
provider is cut short and stripped of control characters.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AccessDenied",
    "AccountSelectionRequired",
    "CallbackError",
    "ClientError",
    "ConsentRequired",
    "DiscoveryError",
    "ExpiredToken",
    "InsufficientScope",
    "InteractionRequired",
    "InvalidClient",
    "InvalidGrant",
    "InvalidIDToken",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "IssuerMismatch",
    "LoginRequired",
    "NetworkError",
    "ProviderError",
    "RefreshTokenRevoked",
    "ServerError",
    "StateMismatch",
    "SubjectMismatch",
    "TemporarilyUnavailable",
    "Timeout",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "provider_error",
]

_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §5.2


def printable(text: str, limit: int = 200) -> str:
    """Provider-supplied text made safe for logs and terminals: short, no control characters."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class ClientError(Exception):
    """Base of every error `bastion.client` raises."""


class NetworkError(ClientError):
    """The provider could not be reached, or the connection failed mid-answer."""


class Timeout(NetworkError):
    """The provider did not answer in time."""


class InvalidResponse(ClientError):
    """The provider answered something the protocol does not allow (wrong status, not JSON, a missing
    or mistyped field): never surfaces as a bare KeyError or ValueError."""


class DiscoveryError(InvalidResponse):
    """The discovery document is missing, malformed, names another issuer, or lacks an endpoint."""


class InvalidIDToken(InvalidResponse):
    """The ID token is forged, expired, for someone else, or otherwise fails validation."""


class SubjectMismatch(InvalidResponse):
    """The UserInfo response names another subject than the login's ID token (a token substitution)."""


class CallbackError(ClientError):
    """The authorization response (the redirect to our callback) is not one we can accept."""


class StateMismatch(CallbackError):
    """`state` is missing or differs from the one we sent: a forged or stale callback."""


class IssuerMismatch(CallbackError):
    """RFC 9207: `iss` in the authorization response is missing or names another provider."""


class ProviderError(ClientError):
    """The provider refused, with an OAuth error code (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6)."""

    error = "error"

    def __init__(self, error: str, description: str | None = None, uri: str | None = None,
                 status: int | None = None) -> None:
        self.error, self.description, self.uri, self.status = error, description, uri, status
        message = error if not description else f"{error}: {description}"
        super().__init__(message)


class InvalidRequest(ProviderError):
    error = "invalid_request"


class InvalidClient(ProviderError):
    """Client authentication failed: wrong secret, wrong method, or unknown client."""

    error = "invalid_client"


class InvalidGrant(ProviderError):
    """The code, refresh token or device code is invalid, expired, revoked or was issued to another client."""

    error = "invalid_grant"


class RefreshTokenRevoked(InvalidGrant):
    """The refresh token no longer works (revoked, expired, or reused): the user must log in again."""


class UnauthorizedClient(ProviderError):
    error = "unauthorized_client"


class UnsupportedGrantType(ProviderError):
    error = "unsupported_grant_type"


class InvalidScope(ProviderError):
    error = "invalid_scope"


class InvalidTarget(ProviderError):
    """RFC 8707: the requested resource is unknown or not allowed for this client."""

    error = "invalid_target"


class AccessDenied(ProviderError):
    """The user (or policy) denied the request."""

    error = "access_denied"


class LoginRequired(ProviderError):
    """`prompt=none` was sent and the user has no session at the provider."""

    error = "login_required"


class ConsentRequired(ProviderError):
    error = "consent_required"


class InteractionRequired(ProviderError):
    error = "interaction_required"


class AccountSelectionRequired(ProviderError):
    error = "account_selection_required"


class ServerError(ProviderError):
    error = "server_error"


class TemporarilyUnavailable(ProviderError):
    error = "temporarily_unavailable"


class InvalidToken(ProviderError):
    """RFC 6750: the access token was refused (UserInfo): expired, revoked, or not a token at all."""

    error = "invalid_token"


class InsufficientScope(ProviderError):
    error = "insufficient_scope"


class ExpiredToken(ProviderError):
    """RFC 8628: the device code expired before the user approved it."""

    error = "expired_token"


_BY_CODE: dict[str, type[ProviderError]] = {
    cls.error: cls
    for cls in (InvalidRequest, InvalidClient, InvalidGrant, UnauthorizedClient, UnsupportedGrantType, InvalidScope,
                InvalidTarget, AccessDenied, LoginRequired, ConsentRequired, InteractionRequired,
                AccountSelectionRequired, ServerError, TemporarilyUnavailable, ExpiredToken, InvalidToken,
                InsufficientScope)
}


def provider_error(body: Any, status: int | None, what: str,
                   by_code: dict[str, type[ProviderError]] | None = None) -> ClientError:
    """The typed exception for an OAuth error answer `body` (a dict of parameters); `InvalidResponse`
    when the answer is not an OAuth error at all. `by_code` overrides classes for some codes."""
    code = body.get("error") if isinstance(body, dict) else None
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        shown = f" (HTTP {status})" if status is not None else ""
        return InvalidResponse(f"the {what} gave an unusable answer{shown}")
    description, uri = body.get("error_description"), body.get("error_uri")
    cls = {**_BY_CODE, **(by_code or {})}.get(code, ProviderError)
    return cls(code, printable(description) if isinstance(description, str) and description else None,
               printable(uri, 500) if isinstance(uri, str) else None, status)
