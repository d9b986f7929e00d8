"""The authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6).

A code is redeemed once. A second redemption is treated as an attack: the grant, and with it
every token issued from the first redemption, is revoked (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidGrant, InvalidRequest
from ..models import Client
from ..pkce import verify_pkce
from ..provider import Provider
from ..resources import requested_resources
from ..secrets import hash_secret
from .issuance import issue_tokens, wants_refresh_token

__all__ = ["GRANT_TYPE", "PARAMETERS", "handle"]

GRANT_TYPE = "authorization_code"
PARAMETERS = frozenset({"code", "redirect_uri", "code_verifier", "resource"})


async def handle(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    code_value = params.get("code")
    if not code_value:
        raise InvalidRequest("code is required")
    if not params.get("redirect_uri"):
        raise InvalidRequest("redirect_uri is required")
    store, now = provider.store, provider.now()
    found = await store.get_authorization_code_with_grant(hash_secret(code_value))
    if found is None or found[0].client_id != client.client_id:
        raise InvalidGrant("The authorization code is invalid")
    code, grant, user = found
    if code.consumed_at is not None:
        await store.revoke_grant(code.grant_id, now)
        raise InvalidGrant("The authorization code was already used", detail=f"code reuse, grant {code.grant_id}")
    if code.expires_at <= now:
        raise InvalidGrant("The authorization code expired")
    if params["redirect_uri"] != code.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    verify_pkce(params.get("code_verifier"), code.code_challenge)
    if user is None or grant is None or grant.revoked_at is not None:
        await store.revoke_grant(code.grant_id, now)
        raise InvalidGrant("The authorization is no longer valid")
    # RFC 8707 §2.2: the token request may narrow the resources of the authorization, never widen them.
    resources = requested_resources(params, grant.resources) or grant.resources
    refresh_scope = code.scope if wants_refresh_token(client, code.scope) else None
    issued = issue_tokens(provider, client=client, user=user, grant=grant, scope=code.scope, resources=resources,
                          refresh_scope=refresh_scope, nonce=code.nonce)
    # Consumed and recorded at once: a lost race (the code redeemed twice at the same time) writes nothing.
    if not await store.consume_authorization_code(code.code_hash, now, issued.access, issued.refresh):
        await store.revoke_grant(code.grant_id, now)
        raise InvalidGrant("The authorization code was already used", detail=f"code race, grant {code.grant_id}")
    return issued.response
