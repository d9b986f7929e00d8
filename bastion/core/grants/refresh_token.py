"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

Every use consumes the presented token and issues its successor in one transaction. Presenting a
token that was consumed earlier means two parties hold it, so the whole family (the grant: every
refresh and access token issued from one authorization) is revoked and an audit event recorded.
A request that merely lost a race, or arrived within `refresh_token_reuse_grace` of the rotation
(a client retrying in parallel), fails without revoking, so that exactly one of N simultaneous
requests succeeds and the family survives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import InvalidGrant, InvalidRequest, InvalidScope
from ..models import Client, RefreshToken
from ..provider import Provider
from ..resources import requested_resources
from ..scopes import parse_scope
from ..secrets import hash_secret
from .issuance import issue_tokens

__all__ = ["GRANT_TYPE", "PARAMETERS", "handle"]

GRANT_TYPE = "refresh_token"
PARAMETERS = frozenset({"refresh_token", "scope", "resource"})


async def _reuse_detected(provider: Provider, token: RefreshToken, client: Client) -> InvalidGrant:
    now = provider.now()
    grace = timedelta(seconds=provider.settings.refresh_token_reuse_grace)
    if token.consumed_at is not None and token.consumed_at >= now - grace:
        await provider.store.record_audit_event(
            "refresh_token_concurrent_use", now, client_id=client.client_id, user_id=token.user_id,
            grant_id=token.grant_id, detail="a just-rotated refresh token was presented again within the grace")
        return InvalidGrant("The refresh token was just used by a concurrent request")
    await provider.store.revoke_grant(token.grant_id, now)
    await provider.store.record_audit_event(
        "refresh_token_reuse", now, client_id=client.client_id, user_id=token.user_id, grant_id=token.grant_id,
        detail="a consumed refresh token was presented again; the grant was revoked")
    return InvalidGrant("The refresh token was already used", detail=f"reuse, grant {token.grant_id} revoked")


async def handle(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    value = params.get("refresh_token")
    if not value:
        raise InvalidRequest("refresh_token is required")
    store, now = provider.store, provider.now()
    family = await store.get_refresh_token_family(hash_secret(value)) if len(value) <= 100 else None
    if family is None or family[0].client_id != client.client_id:
        raise InvalidGrant("The refresh token is invalid")
    token, grant, user = family
    if grant is None or grant.revoked_at is not None:
        raise InvalidGrant("The refresh token was revoked")
    if token.consumed_at is not None:
        raise await _reuse_detected(provider, token, client)
    if token.expires_at <= now or (grant.expires_at is not None and grant.expires_at <= now):
        raise InvalidGrant("The refresh token expired")
    if user is None:
        await store.revoke_grant(grant.grant_id, now)
        raise InvalidGrant("The user no longer exists")

    # The scope may narrow for this access token, never widen; the family keeps its scope (§6).
    scope = parse_scope(params.get("scope")) or token.scope
    if not set(scope) <= set(token.scope):
        raise InvalidScope("The requested scope exceeds what was granted")
    resources = requested_resources(params, grant.resources) or grant.resources
    issued = issue_tokens(provider, client=client, user=user, grant=grant, scope=scope, resources=resources,
                          refresh_scope=token.scope)
    assert issued.refresh is not None
    if not await store.rotate_refresh_token(token.token_hash, now, issued.refresh, issued.access):
        raise InvalidGrant("The refresh token was just used by a concurrent request")
    return issued.response
