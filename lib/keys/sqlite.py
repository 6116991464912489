"""The embedded key store: one SQLite file, the same behaviour as the Supabase functions."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lib.keys.records import KeyStoreUnavailable, NewKey, VerifiedKey, limit_reached, verified
from lib.sqlite_file import open_sqlite

# The columns a key's controls add (supabase/migrations/20261203000000_api_key_controls.sql).
_CONTROLS = {
    "expires": "INTEGER",
    "disabled": "INTEGER NOT NULL DEFAULT 0",
    "models": "TEXT",  # a JSON array of catalog ids
    "limit_chat": "INTEGER",
    "limit_image": "INTEGER",
    "limit_video": "INTEGER",
    "quota_period": "TEXT",
    "quota_requests": "INTEGER",
    "quota_tokens": "INTEGER",
    "version": "INTEGER NOT NULL DEFAULT 1",
}
_FIELDS = "id, name, prefix, created, last_used, " + ", ".join(_CONTROLS)


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
            self._add_control_columns()
        except (sqlite3.Error, OSError) as error:
            raise KeyStoreUnavailable() from error
        self._lock = threading.Lock()

    def _add_control_columns(self) -> None:
        """A file from before key controls gets their columns; its keys keep working with none set."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            present = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
            for column, kind in _CONTROLS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")
        finally:
            self._db.execute("COMMIT")

    def _run(self, sql: str, *args: object) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise KeyStoreUnavailable() from error

    def create(self, key: NewKey, max_keys: int) -> int:
        created = int(time.time())
        columns = _columns(key.controls)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")  # the count and the insert, atomic across processes
                try:
                    (count,) = self._db.execute(
                        "SELECT count(*) FROM api_keys WHERE user_id = ?", (key.user,)
                    ).fetchone()
                    if count >= max_keys:
                        raise limit_reached()
                    names = ["id", "user_id", "name", "prefix", "key_hash", "created", *columns]
                    self._db.execute(
                        f"INSERT INTO api_keys ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                        (key.id, key.user, key.name, key.prefix, key.hash, created, *columns.values()),
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise KeyStoreUnavailable() from error
        return created

    def list(self, user: str) -> list[dict[str, Any]]:
        rows = self._run(
            f"SELECT {_FIELDS} FROM api_keys WHERE user_id = ? ORDER BY created DESC, rowid DESC", user
        )
        return [_row(row) for row in rows]

    def update(self, user: str, key_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        columns = _columns(changes)
        assignments = "".join(f"{name} = ?, " for name in columns)
        rows = self._run(
            f"UPDATE api_keys SET {assignments}version = version + 1 WHERE id = ? AND user_id = ?"
            f" RETURNING {_FIELDS}",
            *columns.values(),
            key_id,
            user,
        )
        return _row(rows[0]) if rows else None

    def delete(self, user: str, key_id: str) -> bool:
        return bool(self._run("DELETE FROM api_keys WHERE id = ? AND user_id = ? RETURNING 1", key_id, user))

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        rows = self._run(f"SELECT user_id, {_FIELDS} FROM api_keys WHERE key_hash = ?", hash)
        if not rows:
            return None
        user, *fields = rows[0]
        row = _row(fields)
        now = int(time.time())
        if (row["last_used"] or 0) <= now - touch_after:  # a busy key costs a read, not a write per request
            self._run(
                "UPDATE api_keys SET last_used = ? WHERE key_hash = ? AND coalesce(last_used, 0) <= ?",
                now,
                hash,
                now - touch_after,
            )
        return verified(row, user, hash)


def _columns(controls: Mapping[str, Any]) -> dict[str, Any]:
    """Flat values as this file stores them: booleans as 0/1, models as JSON. Only known columns."""
    columns = {}
    for name, value in controls.items():
        if name == "name" or name in _CONTROLS:
            if name == "models" and value is not None:
                value = json.dumps(list(value))
            columns[name] = int(value) if isinstance(value, bool) else value
    return columns


def _row(values: Any) -> dict[str, Any]:
    row = dict(zip(_FIELDS.split(", "), values, strict=True))
    row["disabled"] = bool(row["disabled"])
    row["models"] = json.loads(row["models"]) if row["models"] is not None else None
    return row
