"""The embedded key store: one SQLite file, the same behaviour as the Supabase functions."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from lib.keys.store import KeyStoreUnavailable, NewKey, VerifiedKey, limit_reached
from lib.sqlite_file import open_sqlite


class SqliteKeys:
    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created INTEGER NOT NULL,
            last_used INTEGER
        );
        CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id, created);
    """

    def __init__(self, path: Path) -> None:
        try:
            self._db = open_sqlite(path, self._SCHEMA)
        except (sqlite3.Error, OSError) as error:
            raise KeyStoreUnavailable() from error
        self._lock = threading.Lock()

    def _run(self, sql: str, *args: object) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise KeyStoreUnavailable() from error

    def create(self, key: NewKey, max_keys: int) -> int:
        created = int(time.time())
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")  # the count and the insert, atomic across processes
                try:
                    (count,) = self._db.execute(
                        "SELECT count(*) FROM api_keys WHERE user_id = ?", (key.user,)
                    ).fetchone()
                    if count >= max_keys:
                        raise limit_reached()
                    self._db.execute(
                        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (key.id, key.user, key.name, key.prefix, key.hash, created),
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise KeyStoreUnavailable() from error
        return created

    def list(self, user: str) -> list[dict[str, object]]:
        rows = self._run(
            "SELECT id, name, prefix, created, last_used FROM api_keys WHERE user_id = ?"
            " ORDER BY created DESC, rowid DESC",
            user,
        )
        return [
            {"id": id, "name": name, "prefix": prefix, "created": created, "lastUsed": last_used}
            for id, name, prefix, created, last_used in rows
        ]

    def delete(self, user: str, key_id: str) -> bool:
        return bool(self._run("DELETE FROM api_keys WHERE id = ? AND user_id = ? RETURNING 1", key_id, user))

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        rows = self._run("SELECT id, user_id, coalesce(last_used, 0) FROM api_keys WHERE key_hash = ?", hash)
        if not rows:
            return None
        key_id, user, last_used = rows[0]
        now = int(time.time())
        if last_used <= now - touch_after:  # a busy key costs a read, not a write per request
            self._run(
                "UPDATE api_keys SET last_used = ? WHERE key_hash = ? AND coalesce(last_used, 0) <= ?",
                now,
                hash,
                now - touch_after,
            )
        return VerifiedKey(user=user, key_id=key_id)
