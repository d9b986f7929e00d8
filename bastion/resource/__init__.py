"""Resource-server side: validate the access tokens your API receives (RFC 9068, RFC 7662, RFC 6750)."""

from .bearer import bearer_token, www_authenticate
from .validator import AccessToken, InsufficientScope, InvalidToken, MissingToken, TokenValidator

__all__ = ["AccessToken", "InsufficientScope", "InvalidToken", "MissingToken", "TokenValidator", "bearer_token",
           "www_authenticate"]
