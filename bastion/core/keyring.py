"""Loading this process's key set from the store, generating missing keys on first start."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import Settings
from ..store.base import Store
from .jose import ALGORITHMS
from .keys import KeyEncryptor, KeySet, generate_signing_key
from .provider import Provider

__all__ = ["load_keys", "refresh_keys", "rotate_keys"]


async def load_keys(store: Store, secret: str, now: datetime, *, generate: bool = True) -> KeySet:
    encryptor = KeyEncryptor(secret)
    keys = KeySet([encryptor.decrypt(k) for k in await store.list_keys(now)])
    missing = keys.missing_algorithms() if generate else []
    for alg in missing:
        await store.add_key(encryptor.encrypt(generate_signing_key(alg, now)), retire_others_at=None)
    if missing:
        keys = KeySet([encryptor.decrypt(k) for k in await store.list_keys(now)])
    return keys


async def refresh_keys(provider: Provider) -> bool:
    """Pick up keys rotated by another process (`bastion keys rotate`); True when the set changed."""
    keys = await load_keys(provider.store, provider.secret, provider.now(), generate=False)
    if not keys.missing_algorithms() and set(keys.verification_keys) != set(provider.keys.verification_keys):
        provider.keys = keys
        return True
    return False


async def rotate_keys(store: Store, secret: str, settings: Settings, now: datetime,
                      algorithms: tuple[str, ...] = ALGORITHMS) -> list[str]:
    """A new key signs from now on; old ones stay published until what they signed has expired."""
    encryptor = KeyEncryptor(secret)
    retire_at = now + timedelta(seconds=max(settings.id_token_ttl, settings.access_token_ttl) + 300)
    kids = []
    for alg in algorithms:
        key = generate_signing_key(alg, now)
        await store.add_key(encryptor.encrypt(key), retire_others_at=retire_at)
        kids.append(key.kid)
    return kids
