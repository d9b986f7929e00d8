"""Relying-party side: log users in with any OpenID Connect provider, get tokens for your services.

    from bastion.client import Client

    client = Client("https://id.example.com", "my-app", "secret", redirect_uri="https://app.example/callback")
    login = client.start_authorization("openid profile email")   # keep `login` server-side
    # ... redirect the browser to login.url; on the callback:
    tokens = client.finish_authorization(login, request_url)    # ID token fully validated
    print(tokens.claims["sub"], client.userinfo(tokens))

`AsyncClient` has the same methods, awaited. Errors are in `bastion.client.errors`, one hierarchy
under `ClientError`.
"""

from .auth import ClientAuthentication
from .client import AsyncClient, Client
from .errors import (
    AccessDenied,
    AccountSelectionRequired,
    CallbackError,
    ClientError,
    ConsentRequired,
    DiscoveryError,
    ExpiredToken,
    InsufficientScope,
    InteractionRequired,
    InvalidClient,
    InvalidGrant,
    InvalidIDToken,
    InvalidRequest,
    InvalidResponse,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    IssuerMismatch,
    LoginRequired,
    NetworkError,
    ProviderError,
    RefreshTokenRevoked,
    ServerError,
    StateMismatch,
    SubjectMismatch,
    TemporarilyUnavailable,
    Timeout,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .metadata import ProviderMetadata
from .models import AuthorizationRequest, DeviceAuthorization, TokenSet

__all__ = [
    "AccessDenied",
    "AccountSelectionRequired",
    "AsyncClient",
    "AuthorizationRequest",
    "CallbackError",
    "Client",
    "ClientAuthentication",
    "ClientError",
    "ConsentRequired",
    "DeviceAuthorization",
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
    "ProviderMetadata",
    "RefreshTokenRevoked",
    "ServerError",
    "StateMismatch",
    "SubjectMismatch",
    "TemporarilyUnavailable",
    "Timeout",
    "TokenSet",
    "UnauthorizedClient",
    "UnsupportedGrantType",
]
