"""Failed-login throttling, shared by every server process through the store.

Per username, so one account cannot be guessed at; per client address, so one source cannot spray
many accounts. Only failures count, and both limits apply before the password is even checked, so
a throttled attacker also stops costing us argon2 work. The message never says whether the
username exists.
"""

from __future__ import annotations

from datetime import timedelta

from .provider import Provider
from .secrets import hash_secret

__all__ = ["clear_login_failures", "login_throttled", "record_login_failure"]


def _keys(username: str, address: str | None) -> list[str]:
    keys = [hash_secret(f"login:user:{username.casefold()}")]
    if address:
        keys.append(hash_secret(f"login:addr:{address}"))
    return keys


def _limits(provider: Provider) -> tuple[int, int]:
    return provider.settings.login_max_failures, provider.settings.login_max_failures_per_address


async def login_throttled(provider: Provider, username: str, address: str | None) -> bool:
    window_start = provider.now() - timedelta(seconds=provider.settings.login_failure_window)
    for key, limit in zip(_keys(username, address), _limits(provider), strict=False):
        if await provider.store.rate_limit_count(key, window_start) >= limit:
            return True
    return False


async def record_login_failure(provider: Provider, username: str, address: str | None) -> None:
    now = provider.now()
    window_start = now - timedelta(seconds=provider.settings.login_failure_window)
    for key in _keys(username, address):
        await provider.store.rate_limit_hit(key, now, window_start)


async def clear_login_failures(provider: Provider, username: str) -> None:
    await provider.store.rate_limit_reset(_keys(username, None)[0])
