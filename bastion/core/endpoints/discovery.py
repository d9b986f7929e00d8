"""Provider metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2. Only what is true."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ..client_auth import SECRET_METHODS
from ..jose import ALGORITHMS
from ..scopes import (
    STANDARD_CLAIMS,
    SUPPORTED_SCOPES,
)

__all__ = ["provider_metadata"]


def provider_metadata(settings: Settings) -> dict[str, Any]:
    iss = settings.issuer
    return {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "end_session_endpoint": f"{iss}/logout",
        "device_authorization_endpoint": f"{iss}/device_authorization",
        "introspection_endpoint": f"{iss}/introspect",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint_auth_methods_supported": list(SECRET_METHODS),
        "revocation_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                             "at_hash", *(c for c in STANDARD_CLAIMS if c != "sub")],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "claim_types_supported": ["normal"],
        "prompt_values_supported": ["none", "login", "consent"],
        "display_values_supported": ["page", "popup", "touch"],
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }
