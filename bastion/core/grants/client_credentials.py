"""The client credentials grant (RFC 6749 §4.4): a confidential client acting on its own behalf.

The hottest path of a provider: the client comes from the per-process cache, the secret check is
one SHA-256, the token costs one signature, and a JWT is not written anywhere (revocation uses a
jti denylist). Only opaque tokens, which must be looked up later, are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidScope, UnauthorizedClient
from ..models import Client
from ..provider import Provider
from ..resources import requested_resources
from ..scopes import format_scope, parse_scope
from ..tokens import issue_access_token

__all__ = ["GRANT_TYPE", "PARAMETERS", "handle"]

GRANT_TYPE = "client_credentials"
PARAMETERS = frozenset({"scope", "resource"})
# Scopes about an end-user mean nothing without one.
USER_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


async def handle(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    if client.is_public:
        raise UnauthorizedClient("Only confidential clients may use client credentials")
    allowed = tuple(s for s in client.scope if s not in USER_SCOPES)
    scope = parse_scope(params.get("scope")) or allowed
    if not set(scope) <= set(allowed):
        raise InvalidScope("The requested scope is not allowed for this client")
    resources = requested_resources(params, client.resources)
    access = issue_access_token(provider, client=client, subject=None, scope=scope, grant_id=None,
                                resources=resources)
    if access.record is not None:
        await provider.store.record_access_token(access.record)
    return {"access_token": access.token, "token_type": "Bearer", "expires_in": access.expires_in,
            "scope": format_scope(scope)}
