"""Browser state: the login session cookie, per-interaction binding cookies, and CSRF tokens.

Cookies hold random values; the store keeps only their hashes. CSRF tokens are an HMAC of the
cookie they belong to, so they need no storage and cannot be reused across browsers.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from ..core.keys import derive_secret
from ..core.models import BrowserSession
from ..core.provider import Provider
from ..core.secrets import constant_time_equal, hash_secret, new_secret

__all__ = [
    "INTERACTION_COOKIE",
    "SESSION_COOKIE",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "load_session",
    "start_session",
]

SESSION_COOKIE = "bastion_session"
INTERACTION_COOKIE = "bastion_interaction"


def csrf_token(provider: Provider, bound_to: str) -> str:
    key = derive_secret(provider.secret, "csrf")
    return hmac.new(key, bound_to.encode(), hashlib.sha256).hexdigest()


def check_csrf(provider: Provider, bound_to: str | None, submitted: str | None) -> bool:
    if not bound_to or not submitted:
        return False
    return constant_time_equal(csrf_token(provider, bound_to), submitted)


async def load_session(provider: Provider, request: Request) -> BrowserSession | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 100:
        return None
    session = await provider.store.get_session(hash_secret(value), provider.now())
    if session is not None and await provider.store.get_user(session.user_id) is None:
        return None  # the user was deleted
    return session


async def start_session(provider: Provider, request: Request, response: Response, user_id: str) -> BrowserSession:
    """A fresh session id at every login (no session fixation); the old session ends."""
    old = request.cookies.get(SESSION_COOKIE)
    if old and len(old) <= 100:
        await provider.store.delete_session(hash_secret(old))
    value, now = new_secret(32), provider.now()
    ttl = provider.settings.session_ttl
    session = BrowserSession(hash_secret(value), user_id, now, now + timedelta(seconds=ttl))
    await provider.store.create_session(session)
    response.set_cookie(SESSION_COOKIE, value, max_age=ttl, httponly=True, samesite="lax",
                        secure=provider.settings.secure_cookies, path="/")
    return session


async def clear_session(provider: Provider, request: Request, response: Response) -> None:
    value = request.cookies.get(SESSION_COOKIE)
    if value and len(value) <= 100:
        await provider.store.delete_session(hash_secret(value))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=provider.settings.secure_cookies)
