"""The UserInfo endpoint (OIDC Core §5.3): claims by granted scope, `sub` always."""

from __future__ import annotations

from typing import Any

from ..claims import user_claims
from ..errors import InvalidToken, OAuthError
from ..provider import Provider
from ..tokens import verify_access_token

__all__ = ["InsufficientScope", "userinfo"]


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403


async def userinfo(provider: Provider, token: str) -> dict[str, Any]:
    active = await verify_access_token(provider, token)
    if "openid" not in active.scope:
        raise InsufficientScope("The access token was not granted the openid scope")
    user = active.user
    if user is None:
        raise InvalidToken("The access token does not belong to a user")
    requested = active.record.userinfo_claims if active.record else ()
    return user_claims(user, active.scope, dict.fromkeys(requested))
