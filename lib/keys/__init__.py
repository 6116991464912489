"""API keys: create, list and revoke a user's keys; verify a key on every call.

A verified key is remembered by this process for CLOUDGPT_KEY_CACHE_SECONDS (30 by
default, at most 60), so a warm instance answers a busy key without a store round
trip; a deleted key therefore stops working on other instances within that time
(at once on the instance that deleted it).
"""

from __future__ import annotations

import time

from lib.errors import AuthenticationError
from lib.keys.format import PREFIX, key_hash, new_key, new_key_id, shown, well_formed
from lib.keys.store import MAX_KEYS_PER_USER, TOUCH_AFTER_SECONDS, NewKey, VerifiedKey, key_store
from lib.settings import settings

__all__ = ["PREFIX", "VerifiedKey", "create", "list_keys", "revoke", "verify"]

_CACHE_ENTRIES = 10_000
DEFAULT_NAME = "Default key"

_verified: dict[str, tuple[VerifiedKey, float]] = {}  # key hash -> (key, monotonic deadline)


def verify(key: str) -> VerifiedKey:
    """`key`'s id and owner, or a 401 for a malformed, unknown or revoked key."""
    if not well_formed(key):
        raise AuthenticationError("Invalid API key: it is not a CloudGPT key (cgpt_...).")
    hash = key_hash(key)
    hit = _verified.get(hash)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    found = key_store().verify(hash, TOUCH_AFTER_SECONDS)
    if found is None:
        _verified.pop(hash, None)
        raise AuthenticationError("Invalid API key: it does not exist or was deleted.")
    if len(_verified) >= _CACHE_ENTRIES:
        _verified.clear()
    _verified[hash] = (found, time.monotonic() + settings().key_cache_seconds)
    return found


def create(user: str, name: str | None = None) -> dict[str, object]:
    """A new key for `user`; the only time the key itself is ever returned."""
    key = new_key()
    record = NewKey(
        id=new_key_id(), user=user, name=name or DEFAULT_NAME, prefix=shown(key), hash=key_hash(key)
    )
    created = key_store().create(record, MAX_KEYS_PER_USER)
    return {"id": record.id, "key": key, "name": record.name, "created": created}


def list_keys(user: str) -> list[dict[str, object]]:
    return key_store().list(user)


def revoke(user: str, key_id: str) -> bool:
    """Delete the user's key; this process forgets the user's verified keys at once."""
    deleted = key_store().delete(user, key_id)
    for hash, (found, _) in list(_verified.items()):
        if found.user == user:
            _verified.pop(hash, None)
    return deleted
