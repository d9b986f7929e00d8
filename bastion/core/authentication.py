"""End-user authentication by password: throttled, constant in its answers, off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .models import User
from .passwords import verify_password
from .provider import Provider
from .throttle import begin_login_attempt, login_succeeded

__all__ = ["INCORRECT", "THROTTLED", "LoginResult", "authenticate_user"]

INCORRECT = "Incorrect username or password."
THROTTLED = "Too many failed attempts. Wait a few minutes, then try again."


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User | None
    error: str | None = None
    status: int = 200


async def authenticate_user(provider: Provider, username: str, password: str, address: str | None) -> LoginResult:
    username, password = username[:255], password[:1024]
    if not await begin_login_attempt(provider, username, address):
        return LoginResult(None, THROTTLED, 429)
    user = await provider.store.get_user_by_username(username) if username else None
    # The same work and the same words whether the username or the password was wrong; argon2 runs
    # in a thread so that a login does not stall every other request on this worker.
    valid = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if not valid or user is None:
        return LoginResult(None, INCORRECT, 401)
    await login_succeeded(provider, username, address)
    return LoginResult(user)
