"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2-§3).

A `post_logout_redirect_uri` is followed only when it exactly matches one the identified client
registered; otherwise the request is refused on a page, never redirected. Without a valid
`id_token_hint` for the current user, the user is asked to confirm (§2, to prevent forced logout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..errors import InvalidRedirectUri
from ..models import BrowserSession, Client
from ..provider import Provider
from ..tokens import verify_id_token_hint

__all__ = ["LogoutRequest", "validate_logout_request"]


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    client: Client | None
    post_logout_redirect_uri: str | None
    state: str | None
    hint_sub: str | None

    def needs_confirmation(self, session: BrowserSession | None) -> bool:
        if session is None:
            return False
        return self.hint_sub is None or self.hint_sub != session.user_id

    def redirect_target(self) -> str | None:
        if self.post_logout_redirect_uri is None:
            return None
        if self.state is None:
            return self.post_logout_redirect_uri
        parts = urlsplit(self.post_logout_redirect_uri)
        query = "&".join(p for p in (parts.query, urlencode({"state": self.state})) if p)
        return urlunsplit(parts._replace(query=query))


async def validate_logout_request(provider: Provider, params: Mapping[str, str]) -> LogoutRequest:
    hint_sub: str | None = None
    hint_aud: list[str] = []
    if params.get("id_token_hint"):
        claims = verify_id_token_hint(provider, params["id_token_hint"])
        if claims is None:
            raise InvalidRedirectUri("The id_token_hint is not a valid ID token issued by this provider.")
        hint_sub = claims["sub"]
        aud = claims.get("aud")
        hint_aud = [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]
    client_id = params.get("client_id") or (hint_aud[0] if hint_aud else None)
    if params.get("client_id") and hint_aud and params["client_id"] not in hint_aud:
        raise InvalidRedirectUri("client_id does not match the id_token_hint.")
    client = await provider.store.get_client(client_id) if client_id else None
    if client_id and client is None:
        raise InvalidRedirectUri("The application that sent you here is not registered with this provider.")
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        if client is None:
            raise InvalidRedirectUri("post_logout_redirect_uri needs client_id or id_token_hint.")
        if target not in client.post_logout_redirect_uris:
            raise InvalidRedirectUri("The post-logout redirect URI is not registered for this application.")
    return LogoutRequest(client, target, params.get("state"), hint_sub)
