"""What every endpoint needs: settings, the store, this process's keys, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import Settings
from ..store.base import Store
from .keys import KeySet

__all__ = ["Provider", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Provider:
    settings: Settings
    store: Store
    keys: KeySet
    secret: str
    """The key-encryption secret; purpose-bound keys (CSRF) are derived from it."""
    clock: Callable[[], datetime] = field(default=utcnow)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def now(self) -> datetime:
        return self.clock()
