"""The UserInfo endpoint (OIDC Core §5.3): claims by granted scope, `sub` always."""

from __future__ import annotations

from typing import Any

from ..claims import user_claims
from ..errors import InvalidToken, OAuthError
from ..provider import Provider
from ..scopes import parse_scope
from ..tokens import verify_access_token

__all__ = ["InsufficientScope", "userinfo"]


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403


async def userinfo(provider: Provider, token: str) -> dict[str, Any]:
    claims, record = await verify_access_token(provider, token)
    scope = parse_scope(claims.get("scope"))
    if "openid" not in scope:
        raise InsufficientScope("The access token was not granted the openid scope")
    user = await provider.store.get_user(str(claims.get("sub")))
    if user is None:
        raise InvalidToken("The user no longer exists")
    return user_claims(user, scope, dict.fromkeys(record.userinfo_claims))
