"""Loading this process's key set from the store, generating missing keys on first start."""

from __future__ import annotations

from dataclasses import replace
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
    """Pick up keys rotated by another process (`bastion keys rotate`); True when the set changed.

    Runs every `key_refresh_interval` on the event loop: only keys not loaded yet are decrypted, since
    loading (and checking) an RSA private key takes about 36 ms, a stall of every request in flight."""
    stored = await provider.store.list_keys(provider.now())
    loaded = {key.kid: key for key in provider.keys.keys}
    if {s.kid: s.retire_at for s in stored} == {k.kid: k.retire_at for k in loaded.values()}:
        return False
    encryptor = KeyEncryptor(provider.secret)
    keys = KeySet([replace(loaded[s.kid], retire_at=s.retire_at) if s.kid in loaded else encryptor.decrypt(s)
                   for s in stored])
    if keys.missing_algorithms():
        return False
    changed = set(keys.verification_keys) != set(provider.keys.verification_keys)
    provider.keys = keys
    return changed


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
