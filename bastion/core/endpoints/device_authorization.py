"""The device authorization endpoint and the user's decision (RFC 8628 §3.1-§3.3).

User codes are 8 characters from 20 consonants (about 2^34.6 values, §6.1): no vowels, so no words,
and no look-alikes; shown as `WDJB-MJHT`, entered case-insensitively, dashes and spaces ignored.
Guessing a live code is made infeasible by throttling wrong entries on the verification page.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import InvalidScope, OAuthError, UnauthorizedClient
from ..models import BrowserSession, Client, DeviceAuthorization, Grant
from ..provider import Provider
from ..resources import requested_resources
from ..scopes import format_scope, parse_scope
from ..secrets import hash_secret, new_secret

__all__ = [
    "DEVICE_GRANT_TYPE",
    "USER_CODE_ALPHABET",
    "decide",
    "device_authorization",
    "display_user_code",
    "normalize_user_code",
]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


class ServerBusy(OAuthError):
    error = "temporarily_unavailable"
    status = 503


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(entered: str) -> str | None:
    """What the user typed, as stored; None if it cannot be a user code at all."""
    code = "".join(c for c in entered.upper() if c not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


async def device_authorization(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    if DEVICE_GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient("This client may not use the device authorization grant")
    scope = tuple(s for s in parse_scope(params.get("scope")) if s in client.scope)
    if not scope:
        raise InvalidScope("No scope this client may ask for was requested")
    resources = requested_resources(params, client.resources)
    now = provider.now()
    settings = provider.settings
    device_code = new_secret(32)
    for _ in range(10):
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        device = DeviceAuthorization(
            device_code_hash=hash_secret(device_code), user_code=user_code, client_id=client.client_id, scope=scope,
            created_at=now, expires_at=now + timedelta(seconds=settings.device_code_ttl),
            interval=settings.device_code_interval, resources=resources)
        if await provider.store.create_device_authorization(device):
            break
    else:  # ten collisions in 2^34 values: the table is full of live codes
        raise ServerBusy("Try again later")
    verification_uri = f"{provider.issuer}/device"
    return {
        "device_code": device_code,
        "user_code": display_user_code(user_code),
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={display_user_code(user_code)}",
        "expires_in": settings.device_code_ttl,
        "interval": settings.device_code_interval,
        "scope": format_scope(scope),
    }


async def decide(provider: Provider, device: DeviceAuthorization, session: BrowserSession, approve: bool) -> bool:
    """Record the user's answer once; approving creates the grant the device's tokens will belong to."""
    grant = None
    if approve:
        now = provider.now()
        grant = Grant(grant_id=new_secret(16), client_id=device.client_id, user_id=session.user_id,
                      scope=device.scope, created_at=now, auth_time=session.auth_time, amr=session.amr,
                      resources=device.resources,
                      expires_at=now + timedelta(seconds=provider.settings.refresh_token_absolute_ttl))
    return await provider.store.decide_device_authorization(
        device.device_code_hash, "approved" if approve else "denied", grant)
