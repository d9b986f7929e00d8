"""Token revocation (RFC 7009).

Revoking a refresh token revokes its whole family (the grant); revoking an access token ends that
token at once, a JWT through a jti denylist kept until it expires. Unknown tokens, and tokens of
another client, get the same 200 and nothing happens (§2.2), so the endpoint is no oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from ..errors import InvalidRequest
from ..models import AccessTokenRecord, Client
from ..provider import Provider
from ..secrets import hash_secret
from ..tokens import resolve_access_token

__all__ = ["revoke"]


async def _revoke_refresh_token(provider: Provider, client: Client, token: str) -> bool:
    record = await provider.store.get_refresh_token(hash_secret(token)) if len(token) <= 100 else None
    if record is None:
        return False
    if record.client_id == client.client_id:
        now = provider.now()
        await provider.store.revoke_grant(record.grant_id, now)
        await provider.store.record_audit_event("refresh_token_revoked", now, client_id=client.client_id,
                                                user_id=record.user_id, grant_id=record.grant_id,
                                                detail="revoked by the client; the family is revoked")
    return True


async def _revoke_access_token(provider: Provider, client: Client, token: str) -> bool:
    active = await resolve_access_token(provider, token)
    if active is None:
        return False
    if active.client_id == client.client_id:
        record = active.record or AccessTokenRecord(
            jti=active.jti, grant_id=None, client_id=active.client_id, user_id=active.user_id, scope=active.scope,
            expires_at=datetime.fromtimestamp(active.expires_at, UTC), audience=active.audience)
        await provider.store.revoke_access_token(record, provider.now())
    return True


async def revoke(provider: Provider, client: Client, params: Mapping[str, str]) -> None:
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    lookups = [_revoke_refresh_token, _revoke_access_token]
    if params.get("token_type_hint") == "access_token":
        lookups.reverse()
    for lookup in lookups:
        if await lookup(provider, client, token):
            return
