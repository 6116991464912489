"""API keys: create, list and revoke a user's keys; verify a key on every call.

A verified key is remembered by this process for CLOUDGPT_KEY_CACHE_SECONDS (30 by
default, at most 60), so a warm instance answers a busy key without a store round
trip; a deleted key therefore stops working on other instances within that time
(at once on the instance that deleted it). While the store cannot be used, a key
verified here within CLOUDGPT_KEY_STALE_SECONDS keeps working; a key the store
refused is refused again from memory for REFUSED_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lib.errors import AuthenticationError
from lib.keys.format import PREFIX, key_hash, new_key, new_key_id, shown, well_formed
from lib.keys.store import (
    MAX_KEYS_PER_USER,
    TOUCH_AFTER_SECONDS,
    KeyStoreUnavailable,
    NewKey,
    VerifiedKey,
    key_store,
)
from lib.settings import settings

__all__ = ["PREFIX", "VerifiedKey", "create", "list_keys", "revoke", "verify"]

_CACHE_ENTRIES = 10_000
REFUSED_SECONDS = 60
DEFAULT_NAME = "Default key"

# Separate memories, so a flood of made-up keys can only ever evict made-up keys.
_verified: dict[str, tuple[VerifiedKey, float]] = {}  # key hash -> (key, monotonic time verified)
_refused: dict[str, float] = {}  # key hash -> monotonic time until which it is refused without asking


def _nothing() -> None:
    pass


def verify(
    key: str, *, before_store: Callable[[], None] = _nothing, refused: Callable[[], None] = _nothing
) -> VerifiedKey:
    """`key`'s id and owner, or a 401 for a malformed, unknown or revoked key.

    `before_store` runs before the store is asked (it may refuse the request), and
    `refused` after the store said the key does not exist.
    """
    hash = key_hash(key)
    now = time.monotonic()
    current = settings()
    hit = _verified.get(hash)
    if hit is not None and now - hit[1] < current.key_cache_seconds:
        return hit[0]  # only a well-formed key is ever verified: its shape need not be checked again
    if not well_formed(key):
        raise AuthenticationError("Invalid API key: it is not a CloudGPT key (cgpt_...).")
    if _refused.get(hash, 0) > now:
        raise _unknown()
    store = key_store()
    before_store()
    try:
        found = store.verify(hash, TOUCH_AFTER_SECONDS)
    except KeyStoreUnavailable:
        if hit is not None and now - hit[1] < current.key_stale_seconds:
            return hit[0]  # the store is down: a key verified here recently is still trusted
        raise
    if found is None:
        _verified.pop(hash, None)
        _remember(_refused, hash, now + REFUSED_SECONDS)
        refused()
        raise _unknown()
    _remember(_verified, hash, (found, now))
    return found


def _unknown() -> AuthenticationError:
    return AuthenticationError("Invalid API key: it does not exist or was deleted.")


def _remember(memory: dict, hash: str, value: object) -> None:
    if len(memory) >= _CACHE_ENTRIES:
        memory.clear()
    memory[hash] = value


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
