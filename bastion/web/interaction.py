"""The authorization endpoint and the login and consent pages that may stand between it and the code."""

from __future__ import annotations

import logging
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from ..core.authentication import authenticate_user
from ..core.endpoints import authorize as az
from ..core.errors import AccessDenied, InvalidRedirectUri, OAuthError
from ..core.models import BrowserSession, Consent, Interaction
from ..core.provider import Provider
from ..core.scopes import describe_scope
from ..core.secrets import constant_time_equal, hash_secret, new_secret
from .cookies import INTERACTION_COOKIE, check_csrf, csrf_token, load_session, start_session
from .http import parse_params, read_form, request_params
from .render import authorization_redirect, error_page, page, redirect

__all__ = ["authorize", "interaction_consent", "interaction_login", "interaction_show"]

log = logging.getLogger("bastion.authorize")
EXPIRED = "This sign-in request has expired or was already completed. Go back to the application and try again."


async def authorize(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        params = await request_params(request)
    except OAuthError as exc:
        # Without trustworthy parameters there is no safe place to redirect to.
        return error_page(exc.description)
    try:
        client = await az.check_client(provider, params)
        redirect_uri = az.check_redirect_uri(client, params)
    except InvalidRedirectUri as exc:
        log.info("authorization request refused: %s", exc.detail or exc.description)
        return error_page(exc.description)
    try:
        auth_request = az.validate_request(provider, client, redirect_uri, params)
        session = await load_session(provider, request)
        step = await az.next_step(provider, auth_request, session)
        if step == "done":
            assert session is not None
            return authorization_redirect(await az.issue_code(provider, auth_request, session))
    except OAuthError as exc:
        return authorization_redirect(az.error_response(provider, redirect_uri, params.get("state"),
                                                        az.response_mode_of(params), exc))
    return await _start_interaction(provider, auth_request)


async def _start_interaction(provider: Provider, auth_request: az.AuthorizationRequest) -> Response:
    uid, binding, now = new_secret(16), new_secret(32), provider.now()
    ttl = provider.settings.interaction_ttl
    await provider.store.create_interaction(Interaction(
        uid=uid, binding_hash=hash_secret(binding), request=auth_request.to_dict(),
        created_at=now, expires_at=now + timedelta(seconds=ttl)))
    response = redirect(f"/interaction/{uid}")
    response.set_cookie(INTERACTION_COOKIE, binding, max_age=ttl, path=f"/interaction/{uid}", httponly=True,
                        samesite="lax", secure=provider.settings.secure_cookies)
    return response


async def _load_interaction(provider: Provider, request: Request) -> Interaction | None:
    """The pending interaction, only in the browser that started it."""
    uid = request.path_params["uid"]
    binding = request.cookies.get(INTERACTION_COOKIE)
    if not binding or len(uid) > 64:
        return None
    interaction = await provider.store.get_interaction(uid, provider.now())
    if interaction is None or not constant_time_equal(hash_secret(binding), interaction.binding_hash):
        return None
    return interaction


async def _continue(provider: Provider, request: Request, interaction: Interaction,
                    session: BrowserSession | None, error: str | None = None, username: str = "",
                    status: int = 401) -> Response:
    """Show the page the request still needs, or finish it with a code."""
    auth_request = az.AuthorizationRequest.from_dict(interaction.request)
    client = await provider.store.get_client(auth_request.client_id)
    if client is None:
        return error_page("The application is no longer registered.")
    try:
        step = await az.next_step(provider, auth_request, session, interaction)
    except OAuthError as exc:
        return authorization_redirect(az.error_response(provider, auth_request.redirect_uri, auth_request.state,
                                                        auth_request.response_mode, exc))
    csrf = csrf_token(provider, request.cookies.get(INTERACTION_COOKIE, ""))
    if step == "login":
        return page("login.html", status=status if error else 200, client=client, uid=interaction.uid, csrf=csrf,
                    error=error, username=username or auth_request.login_hint or "")
    assert session is not None
    if step == "consent":
        user = await provider.store.get_user(session.user_id)
        scopes = [(s, describe_scope(s)) for s in auth_request.consent_scope]
        return page("consent.html", client=client, uid=interaction.uid, csrf=csrf, scopes=scopes,
                    username=user.username if user else "")
    if not await provider.store.consume_interaction(interaction.uid):
        return error_page(EXPIRED)
    return authorization_redirect(await az.issue_code(provider, auth_request, session))


async def interaction_show(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    interaction = await _load_interaction(provider, request)
    if interaction is None:
        return error_page(EXPIRED)
    return await _continue(provider, request, interaction, await load_session(provider, request))


async def _posted(request: Request) -> tuple[Provider, Interaction | None, dict[str, str]]:
    provider: Provider = request.app.state.provider
    try:
        form = parse_params(await read_form(request))
    except OAuthError:
        return provider, None, {}
    interaction = await _load_interaction(provider, request)
    if interaction is not None and not check_csrf(provider, request.cookies.get(INTERACTION_COOKIE),
                                                  form.get("csrf_token")):
        interaction = None
    return provider, interaction, form


async def interaction_login(request: Request) -> Response:
    provider, interaction, form = await _posted(request)
    if interaction is None:
        return error_page(EXPIRED)
    username = form.get("username", "")
    address = request.client.host if request.client else None
    result = await authenticate_user(provider, username, form.get("password", ""), address)
    if result.user is None:
        log.info("failed login for interaction %s (%d)", interaction.uid[:8], result.status)
        return await _continue(provider, request, interaction, None, error=result.error, username=username[:255],
                               status=result.status)
    user = result.user
    response = redirect(f"/interaction/{interaction.uid}")
    await start_session(provider, request, response, user.id)
    await provider.store.update_interaction(interaction.uid, user_id=user.id, login_at=provider.now())
    return response


async def interaction_consent(request: Request) -> Response:
    provider, interaction, form = await _posted(request)
    if interaction is None:
        return error_page(EXPIRED)
    session = await load_session(provider, request)
    if session is None:
        return redirect(f"/interaction/{interaction.uid}")
    auth_request = az.AuthorizationRequest.from_dict(interaction.request)
    if form.get("decision") != "allow":
        if not await provider.store.consume_interaction(interaction.uid):
            return error_page(EXPIRED)
        error = AccessDenied("The user denied the request")
        return authorization_redirect(az.error_response(
            provider, auth_request.redirect_uri, auth_request.state, auth_request.response_mode, error))
    previous = await provider.store.get_consent(session.user_id, auth_request.client_id)
    scope = tuple(dict.fromkeys((*(previous.scope if previous else ()), *auth_request.consent_scope)))
    await provider.store.save_consent(Consent(session.user_id, auth_request.client_id, scope, provider.now()))
    await provider.store.update_interaction(interaction.uid, user_id=session.user_id, consent_given=True)
    return redirect(f"/interaction/{interaction.uid}")
