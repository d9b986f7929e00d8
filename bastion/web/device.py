"""The device endpoints: POST /device_authorization (JSON) and the /device verification page.

The page takes the user code (or has it prefilled from `verification_uri_complete`), signs the user
in if needed, shows which application asks for what, and records Approve or Deny. Wrong codes are
throttled per browser session and per address, so guessing a live code (about 2^34.6 values) is
infeasible.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..core.authentication import authenticate_user
from ..core.client_auth import authenticate_client
from ..core.endpoints.device_authorization import decide, device_authorization, display_user_code, normalize_user_code
from ..core.errors import OAuthError
from ..core.models import DeviceAuthorization
from ..core.provider import Provider
from ..core.scopes import describe_scope
from ..core.secrets import hash_secret, new_secret
from .cookies import check_csrf, csrf_token, load_session, start_session
from .http import CORS_HEADERS, json_response, oauth_error_response, parse_params, parse_query, read_form
from .render import page, redirect

__all__ = ["device_authorization_endpoint", "device_done", "device_page", "device_submit"]

log = logging.getLogger("bastion.device")
# Binds CSRF tokens on /device before and after sign-in, and keys the wrong-code throttle per browser.
DEVICE_COOKIE = "bastion_device"
WRONG_CODE_WINDOW = timedelta(minutes=1)


async def device_authorization_endpoint(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        params = parse_params(await read_form(request))
        client = await authenticate_client(provider, params, request.headers.get("authorization"))
        body = await device_authorization(provider, client, params)
    except OAuthError as exc:
        return oauth_error_response(exc, CORS_HEADERS)
    return json_response(body, headers=CORS_HEADERS)


def _browser(request: Request) -> str:
    return request.cookies.get(DEVICE_COOKIE) or new_secret(32)


def _render(provider: Provider, browser: str, template: str, status: int = 200, **context: Any) -> Response:
    response = page(template, status=status, csrf=csrf_token(provider, browser), **context)
    response.set_cookie(DEVICE_COOKIE, browser, max_age=3600, path="/device", httponly=True, samesite="lax",
                        secure=provider.settings.secure_cookies)
    return response


async def device_page(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        prefill = parse_params(parse_query(request.url.query)).get("user_code", "")[:20]
    except OAuthError:
        prefill = ""
    return _render(provider, _browser(request), "device_code.html", user_code=prefill, error=None)


def _throttle_keys(browser: str, address: str | None) -> list[str]:
    return [hash_secret(f"device:browser:{browser}"), hash_secret(f"device:addr:{address}")]


async def _entry_allowed(provider: Provider, keys: list[str]) -> bool:
    """Count every entry before the code is even looked up, so neither a guess's answer nor parallel
    guesses get past the limit; an entry that turns out right is taken back (`_entry_was_right`)."""
    now = provider.now()
    limit, allowed = provider.settings.device_max_wrong_codes, True
    for key in keys:
        if await provider.store.rate_limit_hit(key, now, now - WRONG_CODE_WINDOW) > limit:
            allowed = False
    return allowed


async def _entry_was_right(provider: Provider, keys: list[str]) -> None:
    for key in keys:
        await provider.store.rate_limit_release(key)


async def device_submit(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    browser = request.cookies.get(DEVICE_COOKIE)
    try:
        form = parse_params(await read_form(request))
    except OAuthError:
        form = {}
    if browser is None or not check_csrf(provider, browser, form.get("csrf_token")):
        return _render(provider, _browser(request), "device_code.html", status=400, user_code="",
                       error="This form has expired. Please enter the code again.")
    entered = form.get("user_code", "")[:20]
    address = request.client.host if request.client else None
    keys = _throttle_keys(browser, address)
    if not await _entry_allowed(provider, keys):
        log.warning("device code entry throttled")
        return _render(provider, browser, "device_code.html", status=429, user_code="",
                       error="Too many wrong codes. Wait a minute, then try again.")
    code = normalize_user_code(entered)
    device = await provider.store.get_device_authorization(user_code=code) if code else None
    now = provider.now()
    if device is None or device.expires_at <= now or device.status != "pending":
        if device is None:
            message = "That code is not valid. Check the code shown on your device and try again."
        elif device.status != "pending":
            message = "That code was already used. Start again on your device to get a new one."
        else:
            message = "That code has expired. Start again on your device to get a new one."
        return _render(provider, browser, "device_code.html", status=400, user_code=entered, error=message)

    await _entry_was_right(provider, keys)
    session = await load_session(provider, request)
    response: Response
    if session is None and "password" in form:
        result = await authenticate_user(provider, form.get("username", ""), form["password"], address)
        if result.user is None:
            return _render(provider, browser, "device_login.html", status=result.status, error=result.error,
                           user_code=display_user_code(device.user_code), username=form.get("username", "")[:255])
        response = _render(provider, browser, "device_consent.html",
                           **await _consent_context(provider, device, result.user.id))
        await start_session(provider, request, response, result.user.id)
        return response
    if session is None:
        return _render(provider, browser, "device_login.html", error=None,
                       user_code=display_user_code(device.user_code), username="")
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        return _render(provider, browser, "device_consent.html",
                       **await _consent_context(provider, device, session.user_id))
    if not await decide(provider, device, session, approve=decision == "allow"):
        return _render(provider, browser, "device_code.html", status=400, user_code="",
                       error="That code was already used. Start again on your device to get a new one.")
    # Post/redirect/get: reloading the result page must not re-send the decision.
    return redirect("/device/done?approved=1" if decision == "allow" else "/device/done")


async def device_done(request: Request) -> Response:
    return page("device_done.html", approved=request.query_params.get("approved") == "1")


async def _consent_context(provider: Provider, device: DeviceAuthorization, user_id: str) -> dict[str, Any]:
    client = await provider.store.get_client(device.client_id)
    user = await provider.store.get_user(user_id)
    return {"client_name": client.client_name if client else device.client_id,
            "username": user.username if user else "",
            "user_code": display_user_code(device.user_code),
            "scopes": [describe_scope(s) for s in device.scope], "error": None}
