"""The one interface every key store offers, and the choice of store from the settings.

Supabase when it is configured; otherwise the embedded SQLite store under
CLOUDGPT_DATA_DIR, except on Vercel, where a per-instance file would hand out keys
that other instances never heard of: there it is a 503 instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lib.errors import BadRequest, ServiceUnavailable
from lib.instance import kept
from lib.settings import SettingsError, settings

MAX_KEYS_PER_USER = 25
TOUCH_AFTER_SECONDS = 60  # `lastUsed` is written at most this often per key


class KeyLimitReached(BadRequest):
    code = "key_limit_reached"


class KeyStoreUnavailable(ServiceUnavailable):
    """The key store could not be used: unreachable, too slow, or failing.

    `problem` tells the operator which (GET /api/health shows it; a caller only gets the 503):
    `functions_missing` (migrations not applied), `wrong_key` (the store refused the
    project key), `unreachable` (no answer in time) or `failing` (anything else).
    """

    code = "key_store_unavailable"

    def __init__(self, problem: str = "failing") -> None:
        super().__init__("The API key store cannot be used right now.")
        self.problem = problem


def limit_reached() -> KeyLimitReached:
    return KeyLimitReached(
        f"A user can have at most {MAX_KEYS_PER_USER} API keys; delete one to create another."
    )


@dataclass(frozen=True)
class NewKey:
    """A key about to be stored: everything but the key itself."""

    id: str
    user: str
    name: str
    prefix: str
    hash: str


@dataclass(frozen=True)
class VerifiedKey:
    """A key the store knows: whose it is, and its id (what usage is recorded under)."""

    user: str
    key_id: str


class KeyStore(Protocol):
    def create(self, key: NewKey, max_keys: int) -> int:
        """Store `key` unless its user already has `max_keys`; its creation time (Unix s)."""

    def list(self, user: str) -> list[dict[str, object]]:
        """The user's keys, newest first: id, name, prefix, created, lastUsed."""

    def delete(self, user: str, key_id: str) -> bool:
        """Delete the user's key `key_id`; False when the user has no such key."""

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        """The key with this hash and its owner, touching `lastUsed` if older than `touch_after` s."""


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
        from lib.keys.supabase import SupabaseKeys  # supabase-py costs ~0.3 s to import

        return kept(
            ("keys", "supabase", url, service_key),
            lambda: SupabaseKeys(
                url, service_key, Breaker(current.breaker_failures, current.breaker_cooldown)
            ),
        )
    from lib.keys.sqlite import SqliteKeys

    path = current.data_dir / "keys.sqlite3"
    return kept(("keys", "sqlite", path), lambda: SqliteKeys(path))
