"""Resource-server side: validate the access tokens your API receives (RFC 9068, RFC 6750)."""

from .validator import AccessToken, InsufficientScope, InvalidToken, TokenValidator

__all__ = ["AccessToken", "InsufficientScope", "InvalidToken", "TokenValidator"]
