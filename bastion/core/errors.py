"""One error class per RFC error code (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1; OIDC Core §3.1.2.6).

`description` is sent to the client; `detail` is for operators' logs only and is never sent
(node oidc-provider's `error_detail`, fosite's `WithDebug`). Neither may ever contain a secret.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ConsentRequired",
    "InteractionRequired",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRedirectUri",
    "InvalidRequest",
    "InvalidRequestObject",
    "InvalidScope",
    "InvalidToken",
    "LoginRequired",
    "MissingToken",
    "OAuthError",
    "RequestNotSupported",
    "RequestUriNotSupported",
    "ServerError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UnsupportedTokenType",
]


class OAuthError(Exception):
    """An error the protocol defines; `error` is the RFC's code."""

    error = "server_error"
    status = 400
    # False where the redirect target is not (yet) trusted: render a page instead (RFC 6749 §4.1.2.1).
    allow_redirect = True

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed: 401 with `WWW-Authenticate` (RFC 6749 §5.2)."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class InteractionRequired(OAuthError):
    error = "interaction_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class InvalidRequestObject(OAuthError):
    error = "invalid_request_object"


class InvalidRedirectUri(OAuthError):
    """Unknown client or unregistered redirect URI: never redirect, show a page (RFC 9700 §4.11.2)."""

    error = "invalid_request"
    allow_redirect = False


class InvalidToken(OAuthError):
    """A bearer token that is missing, expired, revoked or malformed (RFC 6750 §3.1)."""

    error = "invalid_token"
    status = 401


class MissingToken(InvalidToken):
    """No bearer token at all: the challenge then carries no error code (RFC 6750 §3.1)."""


class ServerError(OAuthError):
    error = "server_error"
    status = 500
