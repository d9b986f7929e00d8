"""What every endpoint needs: settings, the store, this process's keys, and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import Settings
from ..store.base import Store
from .keys import KeySet
from .models import Client

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
    _clients: dict[str, tuple[float, Client]] = field(default_factory=dict, repr=False)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def now(self) -> datetime:
        return self.clock()

    async def client(self, client_id: str) -> Client | None:
        """A registered client, cached for `client_cache_ttl` seconds: the token endpoint's hot path
        then needs no database read. Changes made by another process show within the TTL."""
        ttl = self.settings.client_cache_ttl
        cached = self._clients.get(client_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        client = await self.store.get_client(client_id)
        if client is not None and ttl:
            if len(self._clients) >= 10_000:
                self._clients.clear()
            self._clients[client_id] = (time.monotonic() + ttl, client)
        return client

    def forget_client(self, client_id: str) -> None:
        self._clients.pop(client_id, None)


