"""The user's own pages: sign in, and "Connected apps" (every client they granted, with Revoke)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from ..core.authentication import authenticate_user
from ..core.errors import OAuthError
from ..core.housekeeping import revoke_authorizations
from ..core.models import Consent, Grant
from ..core.provider import Provider
from ..core.scopes import describe_scope, format_scope
from ..core.secrets import new_secret
from .cookies import SESSION_COOKIE, check_csrf, csrf_token, load_session, start_session
from .http import parse_params, read_form
from .render import error_page, page, redirect

__all__ = ["apps", "login", "revoke_app"]

log = logging.getLogger("bastion.account")
# Before sign-in there is no session to bind a CSRF token to: a random cookie scoped to /account serves.
LOGIN_COOKIE = "bastion_account_login"


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    client_id: str
    name: str
    scopes: list[str]
    since: datetime


def _connected(consents: list[Consent], grants: list[Grant], names: dict[str, str]) -> list[ConnectedApp]:
    """One entry per client that can act for the user: by a remembered consent (it may get new
    codes without asking) or by a live grant (it holds tokens). Revoke ends both."""
    scopes: dict[str, set[str]] = {}
    since: dict[str, datetime] = {}
    for client_id, scope, at in ([(c.client_id, c.scope, c.granted_at) for c in consents]
                                 + [(g.client_id, g.scope, g.created_at) for g in grants]):
        if client_id not in names:
            continue  # a deleted client
        scopes.setdefault(client_id, set()).update(scope)
        since[client_id] = min(at, since.get(client_id, at))
    apps = [ConnectedApp(cid, names[cid], [describe_scope(s) for s in format_scope(scopes[cid]).split()], since[cid])
            for cid in scopes]
    return sorted(apps, key=lambda a: a.name.lower())


def _login_page(provider: Provider, request: Request, error: str | None = None, status: int = 200,
                username: str = "") -> Response:
    binding = request.cookies.get(LOGIN_COOKIE) or new_secret(32)
    response = page("account_login.html", status=status if error else 200, error=error, username=username,
                    csrf=csrf_token(provider, binding))
    response.set_cookie(LOGIN_COOKIE, binding, max_age=3600, path="/account", httponly=True, samesite="lax",
                        secure=provider.settings.secure_cookies)
    return response


async def apps(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    session = await load_session(provider, request)
    if session is None:
        return _login_page(provider, request)
    user = await provider.store.get_user(session.user_id)
    now = provider.now()
    grants = [g for g in await provider.store.list_grants(session.user_id)
              if g.expires_at is None or g.expires_at > now]
    consents = list(await provider.store.list_consents(session.user_id))
    names = {}
    for client_id in {g.client_id for g in grants} | {c.client_id for c in consents}:
        client = await provider.store.get_client(client_id)
        if client is not None:
            names[client_id] = client.client_name
    connected = _connected(consents, grants, names)
    return page("account_apps.html", apps=connected, username=user.username if user else "",
                csrf=csrf_token(provider, request.cookies.get(SESSION_COOKIE, "")))


async def login(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        form = parse_params(await read_form(request))
    except OAuthError:  # an unreadable form is just a failed attempt
        form = {}
    if not check_csrf(provider, request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")):
        return error_page("This sign-in form has expired. Please try again.")
    address = request.client.host if request.client else None
    result = await authenticate_user(provider, form.get("username", ""), form.get("password", ""), address)
    if result.user is None:
        return _login_page(provider, request, result.error, result.status, form.get("username", "")[:255])
    response = redirect("/account/apps")
    await start_session(provider, request, response, result.user.id)
    response.delete_cookie(LOGIN_COOKIE, path="/account")
    return response


async def revoke_app(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    session = await load_session(provider, request)
    try:
        form = parse_params(await read_form(request))
    except OAuthError:  # an unreadable form is just a failed attempt
        form = {}
    if session is None or not check_csrf(provider, request.cookies.get(SESSION_COOKIE), form.get("csrf_token")):
        return error_page("This form has expired. Please try again.")
    client_id = form.get("client_id", "")[:255]
    now = provider.now()
    await revoke_authorizations(provider.store, session.user_id, client_id, now, "grants_revoked_by_user")
    return redirect("/account/apps")
