"""What every user-grant token response is made of: access token, ID token, refresh token.

Shared by the authorization code and refresh token grants so that both issue exactly the same
shapes (and the device grant later), and so that the decision to issue a refresh token lives in
one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..claims import user_claims
from ..models import AccessTokenRecord, Client, Grant, RefreshToken, User
from ..provider import Provider
from ..scopes import format_scope
from ..secrets import hash_secret, new_secret
from ..tokens import issue_access_token, issue_id_token

__all__ = ["IssuedTokens", "issue_tokens", "new_refresh_token", "wants_refresh_token"]


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    response: dict[str, Any]
    access: AccessTokenRecord | None
    refresh: RefreshToken | None


def wants_refresh_token(client: Client, scope: Iterable[str]) -> bool:
    """RFC 9700 §4.14: only clients allowed the grant, and only when asked for (or configured always)."""
    if "refresh_token" not in client.grant_types:
        return False
    return "offline_access" in scope or client.refresh_token_policy == "always"


def new_refresh_token(provider: Provider, grant: Grant, scope: Iterable[str],
                      now: datetime) -> tuple[str, RefreshToken]:
    """A 256-bit token expiring at its idle deadline or at the family's absolute end, whichever is first."""
    expires_at = now + timedelta(seconds=provider.settings.refresh_token_idle_ttl)
    if grant.expires_at is not None:
        expires_at = min(expires_at, grant.expires_at)
    token = new_secret(32)
    return token, RefreshToken(token_hash=hash_secret(token), grant_id=grant.grant_id, client_id=grant.client_id,
                               user_id=grant.user_id, scope=tuple(scope), created_at=now, expires_at=expires_at)


def issue_tokens(provider: Provider, *, client: Client, user: User, grant: Grant, scope: tuple[str, ...],
                 resources: tuple[str, ...], refresh_scope: tuple[str, ...] | None,
                 nonce: str | None = None) -> IssuedTokens:
    """The token response (RFC 6749 §5.1) for a user's grant; `refresh_scope` None means no refresh token."""
    claims_request = grant.claims or {}
    access = issue_access_token(
        provider, client=client, subject=user.id, scope=scope, grant_id=grant.grant_id, auth_time=grant.auth_time,
        resources=resources, userinfo_claims=claims_request.get("userinfo", {}).keys())
    response: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": format_scope(scope),
    }
    if "openid" in scope:
        # Claims reflect the user's profile now; auth_time stays that of the original login (OIDC Core §12.2).
        extra = {k: v for k, v in user_claims(user, (), claims_request.get("id_token")).items() if k != "sub"}
        response["id_token"] = issue_id_token(
            provider, client=client, user=user, auth_time=grant.auth_time or grant.created_at, nonce=nonce,
            access_token=access.token, acr=grant.acr, amr=grant.amr, extra_claims=extra)
    refresh = None
    if refresh_scope is not None:
        token, refresh = new_refresh_token(provider, grant, refresh_scope, provider.now())
        response["refresh_token"] = token
    return IssuedTokens(response, access.record, refresh)
