"""The user's own pages: sign in, and "Connected apps" (every client they granted, with Revoke)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from ..core.authentication import authenticate_user
from ..core.errors import OAuthError
from ..core.models import Grant
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


def _connected(grants: list[Grant], names: dict[str, str]) -> list[ConnectedApp]:
    by_client: dict[str, list[Grant]] = {}
    for grant in grants:
        by_client.setdefault(grant.client_id, []).append(grant)
    apps = []
    for client_id, client_grants in by_client.items():
        scope = format_scope(s for g in client_grants for s in g.scope).split()
        apps.append(ConnectedApp(client_id, names.get(client_id, client_id),
                                 [describe_scope(s) for s in scope],
                                 min(g.created_at for g in client_grants)))
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
    grants = list(await provider.store.list_grants(session.user_id))
    names = {}
    for client_id in {g.client_id for g in grants}:
        client = await provider.store.get_client(client_id)
        if client is not None:
            names[client_id] = client.client_name
    connected = _connected([g for g in grants if g.client_id in names], names)
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
    grants = await provider.store.list_grants(session.user_id, client_id)
    for grant in grants:
        await provider.store.revoke_grant(grant.grant_id, now)
    await provider.store.delete_consent(session.user_id, client_id)
    if grants:
        await provider.store.record_audit_event("grants_revoked_by_user", now, user_id=session.user_id,
                                                client_id=client_id, detail=f"{len(grants)} grant(s)")
    return redirect("/account/apps")
