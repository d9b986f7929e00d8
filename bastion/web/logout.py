"""RP-initiated logout pages: confirm when the request cannot prove it comes from the user's app."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..core.endpoints.end_session import LogoutRequest, validate_logout_request
from ..core.errors import OAuthError
from ..core.provider import Provider
from .cookies import SESSION_COOKIE, check_csrf, clear_session, csrf_token, load_session
from .http import parse_params, read_form, request_params
from .render import error_page, page, redirect

__all__ = ["logout", "logout_confirm"]

FORWARDED = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


async def _finish(provider: Provider, request: Request, logout_request: LogoutRequest) -> Response:
    target = logout_request.redirect_target()
    response = redirect(target) if target else page("logged_out.html")
    await clear_session(provider, request, response)
    return response


async def logout(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        params = await request_params(request)
        logout_request = await validate_logout_request(provider, params)
    except OAuthError as exc:
        return error_page(exc.description)
    session = await load_session(provider, request)
    if not logout_request.needs_confirmation(session):
        return await _finish(provider, request, logout_request)
    client_name = logout_request.client.client_name if logout_request.client else None
    return page("logout_confirm.html", client_name=client_name,
                csrf=csrf_token(provider, request.cookies.get(SESSION_COOKIE, "")),
                params={k: params[k] for k in FORWARDED if k in params})


async def logout_confirm(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        params = parse_params(await read_form(request))
        logout_request = await validate_logout_request(provider, {k: params[k] for k in FORWARDED if k in params})
    except OAuthError as exc:
        return error_page(exc.description)
    if await load_session(provider, request) is None:
        return await _finish(provider, request, logout_request)  # nothing left to sign out of
    if not check_csrf(provider, request.cookies.get(SESSION_COOKIE), params.get("csrf_token")):
        return error_page("This sign-out form has expired. Please try again.")
    if params.get("decision") != "logout":
        target = logout_request.redirect_target()
        return redirect(target) if target else page("logged_out.html", stayed=True)
    return await _finish(provider, request, logout_request)
