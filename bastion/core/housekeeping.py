"""Pruning what can no longer matter, so tables do not grow without bound."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import Settings
from ..store.base import Store

__all__ = ["prune", "revoke_authorizations"]


async def revoke_authorizations(store: Store, user_id: str, client_id: str | None, now: datetime,
                                event: str) -> int:
    """End what a user granted (to one client, or all): every grant family and the remembered consent,
    so that the client must ask again. Audited as `event`; returns the number of grants revoked."""
    grants = await store.list_grants(user_id, client_id)
    for grant in grants:
        await store.revoke_grant(grant.grant_id, now)
    await store.delete_consent(user_id, client_id)
    await store.record_audit_event(event, now, user_id=user_id, client_id=client_id,
                                   detail=f"{len(grants)} grant(s) revoked")
    return len(grants)


async def prune(store: Store, settings: Settings, now: datetime) -> int:
    """Expired codes, tokens, sessions, interactions; old grants, stale rate limits, old audit events."""
    return await store.delete_expired(
        now, rate_limit_window=timedelta(seconds=settings.login_failure_window),
        audit_retention=timedelta(days=settings.audit_retention_days))
