"""The device access token request (RFC 8628 §3.4-§3.5): polled until the user decides.

Polling faster than the interval answers `slow_down` and the interval the device must keep grows
by 5 seconds; the device code is single use and bound to the client it was issued to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..endpoints.device_authorization import DEVICE_GRANT_TYPE
from ..errors import AccessDenied, InvalidGrant, InvalidRequest, OAuthError
from ..models import Client
from ..provider import Provider
from ..secrets import hash_secret
from .issuance import issue_tokens, wants_refresh_token

__all__ = ["GRANT_TYPE", "PARAMETERS", "handle"]

GRANT_TYPE = DEVICE_GRANT_TYPE
PARAMETERS = frozenset({"device_code"})


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


class DeviceAccessDenied(AccessDenied):
    status = 400  # a token-endpoint error (RFC 8628 §3.5), not a page


async def handle(provider: Provider, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    value = params.get("device_code")
    if not value:
        raise InvalidRequest("device_code is required")
    store, now = provider.store, provider.now()
    device = await store.get_device_authorization(device_code_hash=hash_secret(value)) if len(value) <= 100 else None
    if device is None or device.client_id != client.client_id:
        raise InvalidGrant("The device code is invalid")
    if device.status == "consumed":
        raise InvalidGrant("The device code was already used")
    if device.expires_at <= now:
        raise ExpiredToken("The device code expired; start again")
    if device.status == "denied":
        raise DeviceAccessDenied("The user denied the request")
    if device.status == "pending":
        too_soon = device.last_polled_at is not None and (
            now - device.last_polled_at < timedelta(seconds=device.interval))
        interval = device.interval + 5 if too_soon else device.interval
        await store.record_device_poll(device.device_code_hash, now, interval)
        if too_soon:
            raise SlowDown("Polling too fast: wait 5 more seconds between requests")
        raise AuthorizationPending("The user has not answered yet")

    grant = await store.get_grant(device.grant_id) if device.grant_id else None
    user = await store.get_user(grant.user_id) if grant else None
    if grant is None or user is None or grant.revoked_at is not None:
        raise InvalidGrant("The authorization is no longer valid")
    if not await store.consume_device_authorization(device.device_code_hash):
        raise InvalidGrant("The device code was already used")
    refresh_scope = device.scope if wants_refresh_token(client, device.scope) else None
    issued = issue_tokens(provider, client=client, user=user, grant=grant, scope=device.scope,
                          resources=device.resources, refresh_scope=refresh_scope)
    await store.record_tokens(issued.access, issued.refresh)
    return issued.response
