"""Failed-login throttling, shared by every server process through the store.

Per username, so one account cannot be guessed at; per client address, so one source cannot spray
many accounts. Only failures count, and both limits apply before the password is even checked, so
a throttled attacker also stops costing us argon2 work. The address is the TCP peer: behind a
reverse proxy every user shares it, so raise BASTION_LOGIN_MAX_FAILURES_PER_ADDRESS there.
The message never says whether the username exists.
"""

from __future__ import annotations

from datetime import timedelta

from .provider import Provider
from .secrets import hash_secret

__all__ = ["begin_login_attempt", "login_succeeded"]


def _keys(username: str, address: str | None) -> list[str]:
    keys = [hash_secret(f"login:user:{username.casefold()}")]
    if address:
        keys.append(hash_secret(f"login:addr:{address}"))
    return keys


def _limits(provider: Provider) -> tuple[int, int]:
    return provider.settings.login_max_failures, provider.settings.login_max_failures_per_address


async def begin_login_attempt(provider: Provider, username: str, address: str | None) -> bool:
    """Count the attempt first, atomically, then decide: parallel guesses cannot slip past a check.

    False when the username or the address is over its limit; the password must not be checked.
    """
    now = provider.now()
    window_start = now - timedelta(seconds=provider.settings.login_failure_window)
    allowed = True
    for key, limit in zip(_keys(username, address), _limits(provider), strict=False):
        if await provider.store.rate_limit_hit(key, now, window_start) > limit:
            allowed = False
    return allowed


async def login_succeeded(provider: Provider, username: str, address: str | None) -> None:
    """Only failures should count: forget the username's, and take this attempt off the address."""
    keys = _keys(username, address)
    await provider.store.rate_limit_reset(keys[0])
    if len(keys) > 1:
        await provider.store.rate_limit_release(keys[1])
