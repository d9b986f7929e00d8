"""Pruning what can no longer matter, so tables do not grow without bound."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import Settings
from ..store.base import Store

__all__ = ["prune"]


async def prune(store: Store, settings: Settings, now: datetime) -> int:
    """Expired codes, tokens, sessions, interactions; old grants, stale rate limits, old audit events."""
    return await store.delete_expired(
        now, rate_limit_window=timedelta(seconds=settings.login_failure_window),
        audit_retention=timedelta(days=settings.audit_retention_days))
