"""Token introspection (RFC 7662).

Anything that is not an active token this caller may see is `{"active": false}`, so the endpoint
reveals nothing about tokens of other clients. A client sees its own tokens; a resource server
registered with the `introspect` permission sees access tokens whose audience is one of its
resources. `token_type_hint` only changes the order of the look-ups (§2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidClient, InvalidRequest
from ..models import Client
from ..provider import Provider
from ..scopes import format_scope
from ..secrets import hash_secret
from ..tokens import resolve_access_token

__all__ = ["INACTIVE", "introspect"]

INACTIVE: dict[str, Any] = {"active": False}


def _epoch(value: Any) -> int:
    return int(value.timestamp())


async def _access_token(provider: Provider, client: Client, token: str) -> dict[str, Any] | None:
    active = await resolve_access_token(provider, token)
    if active is None:
        return None
    mine = active.client_id == client.client_id
    audience_of_mine = "introspect" in client.permissions and bool(set(active.audience) & set(client.resources))
    if not (mine or audience_of_mine):
        return None
    return {
        "active": True, "scope": format_scope(active.scope), "client_id": active.client_id, "sub": active.subject,
        "aud": active.audience[0] if len(active.audience) == 1 else list(active.audience),
        "iss": provider.issuer, "exp": active.expires_at, "iat": active.issued_at, "jti": active.jti,
        "token_type": "Bearer", **({"username": active.user.username} if active.user else {}),
    }


async def _refresh_token(provider: Provider, client: Client, token: str) -> dict[str, Any] | None:
    if len(token) > 100:
        return None
    family = await provider.store.get_refresh_token_family(hash_secret(token))
    now = provider.now()
    if family is None or family[0].client_id != client.client_id or family[0].consumed_at is not None:
        return None
    record, grant, user = family
    if (record.expires_at <= now or grant is None or grant.revoked_at is not None
            or (grant.expires_at is not None and grant.expires_at <= now)):
        return None
    audience = grant.resources or (provider.settings.audience,)
    # No token_type: RFC 7662 means an access-token type (RFC 6749 §7.1) there, which a refresh token has not.
    return {
        "active": True, "scope": format_scope(record.scope), "client_id": record.client_id, "sub": record.user_id,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "iss": provider.issuer, "exp": _epoch(record.expires_at), "iat": _epoch(record.created_at),
        **({"username": user.username} if user is not None else {}),
    }


async def introspect(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    if client.is_public:
        raise InvalidClient("Introspection requires client authentication")
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    lookups = [_access_token, _refresh_token]
    if params.get("token_type_hint") == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        result = await lookup(provider, client, token)
        if result is not None:
            return result
    return INACTIVE
