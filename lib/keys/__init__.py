"""API keys: create, list, change and revoke a user's keys; verify a key on every call.

A verified key is remembered by this process for CLOUDGPT_KEY_CACHE_SECONDS (30 by
default, at most 60), so a warm instance answers a busy key without a store round
trip. A change or a deletion raises the key's marker in the counters' store
(`marker`), which every request with the key reads in the same round trip as its
rate-limit count (`lib/limits.py`): an instance holding an older version
verifies the key again, so changes hold everywhere within a request. While the
store cannot be used, a key verified here within CLOUDGPT_KEY_STALE_SECONDS keeps
working; a key the store refused is refused again from memory for REFUSED_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lib.counters import CountersUnavailable, Get, Mark, counters
from lib.errors import AuthenticationError, BadRequest
from lib.keys.format import PREFIX, key_hash, new_key, new_key_id, shown, well_formed
from lib.keys.records import (
    CONTROLS,
    MAX_KEYS_PER_USER,
    MODALITIES,
    TOUCH_AFTER_SECONDS,
    KeyStoreUnavailable,
    NewKey,
    Quota,
    VerifiedKey,
    flat,
    listed,
)
from lib.keys.store import key_store
from lib.settings import settings

__all__ = ["PREFIX", "VerifiedKey", "create", "current", "list_keys", "revoke", "update", "verify"]

_CACHE_ENTRIES = 10_000
REFUSED_SECONDS = 60
DEFAULT_NAME = "Default key"
REVOKED = float(2**62)  # a deleted key's marker: above every version
MARKER_SECONDS = 2 * 86_400  # longer than any verification is trusted (CLOUDGPT_KEY_STALE_SECONDS <= 1 day)
MAX_EXPIRY_SECONDS = 10 * 365 * 86_400
log = logging.getLogger("cloudgpt")

# Separate memories, so a flood of made-up keys can only ever evict made-up keys.
_verified: dict[str, tuple[VerifiedKey, float]] = {}  # key hash -> (key, monotonic time verified)
_refused: dict[str, float] = {}  # key hash -> monotonic time until which it is refused without asking
_lookups: dict[str, threading.Lock] = {}  # key hash -> held while the store is asked about it
_lookups_guard = threading.Lock()


def _nothing() -> None:
    pass


def marker(key_id: str) -> str:
    """Where a key's change marker lives beside the counters: its highest version, or REVOKED."""
    return f"cgpt:key:{key_id}"


def verify(
    key: str, *, before_store: Callable[[], None] = _nothing, refused: Callable[[], None] = _nothing
) -> VerifiedKey:
    """`key`'s owner, id and controls, or a 401 for a malformed, unknown or revoked key.

    A disabled or expired key is answered too: whether it may be used is the
    caller's to check (`VerifiedKey.refusal`), after learning whether it changed.
    `before_store` runs before the store is asked (it may refuse the request), and
    `refused` after the store said the key does not exist.
    """
    hash = key_hash(key)
    hit = _verified.get(hash)
    if hit is not None and time.monotonic() - hit[1] < settings().key_cache_seconds:
        return hit[0]  # only a well-formed key is ever verified: its shape need not be checked again
    if not well_formed(key):
        raise AuthenticationError("Invalid API key: it is not a CloudGPT key (cgpt_...).")
    with _lookups_guard:
        lookup = _lookups.setdefault(hash, threading.Lock())
    with lookup:  # one lookup of a key at a time per process: a burst of it is one store call
        try:
            hit = _verified.get(hash)
            now = time.monotonic()
            if hit is not None and now - hit[1] < settings().key_cache_seconds:
                return hit[0]  # verified while this request waited
            if _refused.get(hash, 0) > now:
                raise _unknown()
            key_store()  # a store that is not configured is said so before anything is counted
            before_store()
            return _from_store(hash, hit, refused)
        finally:
            with _lookups_guard:
                _lookups.pop(hash, None)


def reverify(found: VerifiedKey) -> VerifiedKey:
    """The key as the store has it now, once its marker showed a change; a 401 once deleted.

    A change seen and not confirmed is not trusted: the store being down is a 503 here.
    """
    _verified.pop(found.hash, None)
    return _from_store(found.hash, None, _nothing)


def _from_store(hash: str, hit: tuple[VerifiedKey, float] | None, refused: Callable[[], None]) -> VerifiedKey:
    now = time.monotonic()
    try:
        found = key_store().verify(hash, TOUCH_AFTER_SECONDS)
    except KeyStoreUnavailable:
        if hit is not None and now - hit[1] < settings().key_stale_seconds:
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


def checked_controls(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The controls among `fields` (a parsed body), each checked against the catalog and the
    account's limits; a 400 naming the field otherwise."""
    from lib import catalog

    controls = {name: fields[name] for name in CONTROLS if name in fields}
    expires = controls.get("expires")
    now = time.time()
    if expires is not None and not now < expires <= now + MAX_EXPIRY_SECONDS:
        raise _invalid("expires", "must be a Unix time in the future, at most ten years away")
    for i, model in enumerate(controls.get("models") or []):
        if catalog.find(model) is None:
            raise _invalid(f"models[{i}]", f"{model!r} is not a catalog model id (GET /api/models)")
    limits = controls.get("limits") or {}
    for modality in MODALITIES:
        ceiling = settings().limits[modality].authenticated
        if limits.get(modality) is not None and limits[modality] > ceiling:
            raise _invalid(f"limits.{modality}", f"must be at most the account's {ceiling} per minute")
    quota = controls.get("quota")
    if quota is not None and quota.get("requests") is None and quota.get("tokens") is None:
        raise _invalid("quota", "needs a `requests` or a `tokens` cap (or null for no quota)")
    return controls


def _invalid(param: str, rule: str) -> BadRequest:
    return BadRequest(f"Invalid '{param}': {rule}.", code="invalid_value", param=param)


def create(user: str, name: str | None = None, controls: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new key for `user`; the only time the key itself is ever returned."""
    key = new_key()
    record = NewKey(
        id=new_key_id(),
        user=user,
        name=name or DEFAULT_NAME,
        prefix=shown(key),
        hash=key_hash(key),
        controls=flat(controls or {}),
    )
    created = key_store().create(record, MAX_KEYS_PER_USER)
    row = {"id": record.id, "name": record.name, "prefix": record.prefix, "created": created,
           "last_used": None, **record.controls}  # fmt: skip
    answer = listed(row)
    del answer["lastUsed"], answer["prefix"]
    return {"id": record.id, "key": key, **answer}


def list_keys(user: str) -> list[dict[str, Any]]:
    """The user's keys, newest first, each with `quotaUsed` when it has a quota."""
    keys = [listed(row) for row in key_store().list(user)]
    _add_quota_used([key for key in keys if key["quota"] is not None])
    return keys


def current(found: VerifiedKey) -> dict[str, Any]:
    """GET /api/keys/current: the calling key as listed, never the key itself."""
    for key in list_keys(found.user):
        if key["id"] == found.key_id:
            return key
    raise _unknown()  # deleted since it was verified


def _add_quota_used(keys: list[dict[str, Any]]) -> None:
    """`quotaUsed: {"requests", "tokens", "resets"}` for each key, read in one round trip."""
    if not keys:
        return
    now = time.time()
    spans = [Quota(**key["quota"]).tallies(key["id"], now) for key in keys]
    try:
        counts = counters(settings()).run(
            [Get(k) for requests, tokens, _ in spans for k in (requests, tokens)]
        )
    except CountersUnavailable:
        return  # the keys are still listed; how much of a quota is used is not known now
    for i, (key, (_, _, end)) in enumerate(zip(keys, spans, strict=True)):
        requests, tokens = counts[2 * i : 2 * i + 2]
        cap = key["quota"]["requests"]
        used = int(requests or 0) if cap is None else min(int(requests or 0), cap)
        key["quotaUsed"] = {"requests": used, "tokens": int(tokens or 0), "resets": end}


def update(user: str, key_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Change the user's key; every instance learns of it at its next request with the key."""
    row = key_store().update(user, key_id, flat(changes))
    if row is None:
        return None
    _announce(key_id, row["version"])
    key = listed(row)
    _add_quota_used([key] if key["quota"] is not None else [])
    return key


def revoke(user: str, key_id: str) -> bool:
    """Delete the user's key; this process forgets it at once, every other at its next request with it."""
    deleted = key_store().delete(user, key_id)
    if deleted:
        _announce(key_id, REVOKED)
    return deleted


def _announce(key_id: str, version: float) -> None:
    """Raise the key's marker; if the counters cannot be used, the change reaches other
    instances only as their verifications expire (CLOUDGPT_KEY_CACHE_SECONDS)."""
    for hash, (found, _) in list(_verified.items()):
        if found.key_id == key_id:
            _verified.pop(hash, None)
    try:
        counters(settings()).run([Mark(marker(key_id), version, MARKER_SECONDS)])
    except CountersUnavailable as error:
        log.warning("key change not announced: counters unavailable (%r)", error.__cause__)
