"""The token endpoint (RFC 6749 §3.2): authenticate, pick the grant, drop foreign parameters, run it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..client_auth import authenticate_client
from ..errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from ..grants import GRANTS
from ..provider import Provider

__all__ = ["token_endpoint"]


async def token_endpoint(provider: Provider, params: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
    client = await authenticate_client(provider, params, authorization)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type not in GRANTS:
        raise UnsupportedGrantType("Unsupported grant_type")
    if grant_type not in client.grant_types:
        raise UnauthorizedClient("This client may not use this grant type")
    allowed, handler = GRANTS[grant_type]
    # Each grant sees only the parameters it declares (node oidc-provider's stripGrantIrrelevantParams).
    return await handler(provider, client, {k: v for k, v in params.items() if k in allowed})
