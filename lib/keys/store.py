"""The one interface every key store offers, and the choice of store from the settings.

The stores import only `lib/keys/records.py`; this module imports them when chosen.

Supabase when it is configured; otherwise the embedded SQLite store under
CLOUDGPT_DATA_DIR, except on Vercel, where a per-instance file would hand out keys
that other instances never heard of: there it is a 503 instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lib.errors import ServiceUnavailable
from lib.instance import kept
from lib.keys.records import MAX_KEYS_PER_USER, TOUCH_AFTER_SECONDS, NewKey, VerifiedKey
from lib.settings import SettingsError, settings


class KeyStore(Protocol):
    def create(self, key: NewKey, max_keys: int) -> int:
        """Store `key` unless its user already has `max_keys`; its creation time (Unix s)."""

    def list(self, user: str) -> list[dict[str, Any]]:
        """The user's keys, newest first, in the flat shape (`lib/keys/records.py`)."""

    def update(self, user: str, key_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """Set the flat columns in `changes` on the user's key and raise its version; the key, or None."""

    def delete(self, user: str, key_id: str) -> bool:
        """Delete the user's key `key_id`; False when the user has no such key."""

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        """The key with this hash, its owner and controls, touching `lastUsed` if older than `touch_after` s."""


def key_store() -> KeyStore:
    """The process's store, opened by the first request that needs it."""
    current = settings()
    url, service_key = current.supabase_url, current.supabase_service_role_key
    if service_key and not url:
        raise SettingsError(
            "CloudGPT is misconfigured: SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY) is set "
            "without SUPABASE_URL."
        )
    if not (url and service_key) and current.on_vercel:
        raise ServiceUnavailable(
            "API keys are not configured: on Vercel they need Supabase "
            "(SUPABASE_URL and SUPABASE_SECRET_KEY).",
            code="key_store_not_configured",
        )
    if url and service_key:
        from lib.breaker import Breaker
        from lib.keys.supabase import SupabaseKeys

        return kept(
            ("keys", "supabase", url, service_key),
            lambda: SupabaseKeys(
                url, service_key, Breaker(current.breaker_failures, current.breaker_cooldown)
            ),
        )
    from lib.keys.sqlite import SqliteKeys

    path = current.data_dir / "keys.sqlite3"
    return kept(("keys", "sqlite", path), lambda: SqliteKeys(path))


__all__ = ["MAX_KEYS_PER_USER", "TOUCH_AFTER_SECONDS", "KeyStore", "key_store"]
