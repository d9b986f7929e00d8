"""Framework integrations: `bastion.integrations.flask` (log users in, protect APIs) and
`bastion.integrations.fastapi` (protect APIs). Each needs its extra: `bastion[flask]`, `bastion[fastapi]`.

This module holds only what is framework-free: where a web login keeps its server-side state.
A login in flight carries the PKCE code verifier and the nonce, and a logged-in session carries
tokens; none of them may sit in a cookie the browser (or anyone reading its cookies) can read, so
the cookie holds a random id and the values live in a `TransactionStore`.

`MemoryStore` (the default) lives in one process. Behind several processes or hosts, pass a shared
store; a Redis-backed one is a few lines (values are JSON-safe dicts)::

    class RedisStore:
        def __init__(self, redis: "redis.Redis") -> None:
            self.redis = redis
        def get(self, key: str) -> dict[str, Any] | None:
            raw = self.redis.get(key)
            return json.loads(raw) if raw is not None else None
        def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
            self.redis.set(key, json.dumps(value), ex=max(1, math.ceil(ttl)))
        def delete(self, key: str) -> None:
            self.redis.delete(key)
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["MemoryStore", "TransactionStore"]


class TransactionStore(Protocol):
    """Server-side key-value storage with expiry. Values are JSON-safe dicts; `ttl` is in seconds."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any], ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryStore:
    """A thread-safe in-process `TransactionStore`: right for one process, lost on restart.

    Bounded, because anyone can start logins: past `max_entries`, expired entries go first, then the
    oldest ones, so a flood of abandoned logins costs bounded memory (and may end old sessions).
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._swept_at = float("-inf")

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return copy.deepcopy(entry[1])  # as a shared store would: no aliasing between requests

    def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._entries.pop(key, None)
            if len(self._entries) >= self.max_entries and now - self._swept_at >= 1:
                self._swept_at = now  # a full scan at most once a second, even under a flood
                for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                    del self._entries[stale]
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
            self._entries[key] = (now + ttl, copy.deepcopy(value))

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
