"""Usage rows and activity entries in one SQLite file: the embedded store, shared by every thread and process.

Records add to their rows with upserts, and their activity entries are inserted, in
one transaction, atomic across processes, so concurrent requests are never lost.
Once a day per process, rows older than KEEP_DAYS are swept, and activity entries
past both ACTIVITY_DAYS and a user's last ACTIVITY_KEPT.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.counters import Add, CountersUnavailable, counters
from lib.settings import settings
from lib.sqlite_file import open_sqlite
from lib.usage import (
    ACTIVITY_DAYS,
    ACTIVITY_KEPT,
    DAY_SECONDS,
    KEEP_DAYS,
    METRICS,
    Entry,
    UnknownEntry,
    UsageUnavailable,
)

if TYPE_CHECKING:
    from lib.usage.query import ActivityQuery

_COLUMNS = ("requests", "errors", "prompt_tokens", "completion_tokens", "images", "video_seconds")
_COLUMN = dict(zip(METRICS, _COLUMNS, strict=True))


class SqliteUsage:
    _SCHEMA = f"""
        CREATE TABLE IF NOT EXISTS usage (
            user_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            modality TEXT NOT NULL,
            {", ".join(f"{column} INTEGER NOT NULL DEFAULT 0" for column in _COLUMNS)},
            PRIMARY KEY (user_id, day, key_id, model, modality)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS usage_day ON usage (day);
        CREATE TABLE IF NOT EXISTS activity (
            seq INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL,
            time INTEGER NOT NULL,
            id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT,
            failed INTEGER NOT NULL,
            entry TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS activity_newest ON activity (user_id, time, seq);
        CREATE INDEX IF NOT EXISTS activity_id ON activity (id);
        CREATE TABLE IF NOT EXISTS key_names (
            user_id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            name TEXT NOT NULL,
            day INTEGER NOT NULL,
            PRIMARY KEY (user_id, key_id)
        ) WITHOUT ROWID;
    """
    _KEEP = """
        INSERT INTO activity (user_id, time, id, key_id, model, failed, entry) VALUES (?, ?, ?, ?, ?, ?, ?)
    """
    # Past ACTIVITY_DAYS and not among its user's last ACTIVITY_KEPT: the entries no longer kept.
    _SWEEP_ACTIVITY = """
        DELETE FROM activity WHERE seq IN (
            SELECT seq FROM (
                SELECT seq, time, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY time DESC, seq DESC) AS newer
                FROM activity
            ) WHERE newer > ? AND time < ?
        )
    """
    _ADD = f"""
        INSERT INTO usage (user_id, day, key_id, model, modality, {", ".join(_COLUMNS)})
        VALUES (?, ?, ?, ?, ?, {", ".join("?" for _ in _COLUMNS)})
        ON CONFLICT (user_id, day, key_id, model, modality) DO UPDATE SET
        {", ".join(f"{column} = {column} + excluded.{column}" for column in _COLUMNS)}
    """

    def __init__(self, path: Path) -> None:
        try:
            self._db = open_sqlite(path, self._SCHEMA)
        except (sqlite3.Error, OSError) as error:
            raise UsageUnavailable() from error
        self._lock = threading.Lock()
        self._swept_day = 0

    def add(self, entries: list[Entry]) -> None:
        """Add each entry to its row, all in one transaction."""
        rows = [
            (
                entry.user,
                entry.day,
                entry.key_id,
                entry.model,
                entry.modality,
                *(entry.counts.get(n, 0) for n in METRICS),
            )
            for entry in entries
        ]
        kept = [
            (
                entry.user,
                a["time"],
                a["id"],
                a["keyId"],
                a["model"],
                int(a["error"] is not None),
                json.dumps(a, separators=(",", ":")),
            )
            for entry in entries
            if (a := entry.activity) is not None
        ]
        day = max(entry.day for entry in entries)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(self._ADD, rows)
                    self._db.executemany(self._KEEP, kept)
                    if day != self._swept_day:  # once a day and process: drop what is past keeping
                        self._swept_day = day
                        self._db.execute("DELETE FROM usage WHERE day < ?", (day - KEEP_DAYS,))
                        self._db.execute("DELETE FROM key_names WHERE day < ?", (day - KEEP_DAYS,))
                        oldest = (time.time() - ACTIVITY_DAYS * DAY_SECONDS) * 1000
                        self._db.execute(self._SWEEP_ACTIVITY, (ACTIVITY_KEPT, oldest))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise UsageUnavailable() from error
        tallies = [Add(e.tally[0], e.tokens, e.tally[1]) for e in entries if e.tally is not None]
        if tallies:  # a key's token quota lives beside its request count, in the counters' file
            try:
                counters(settings()).run(tallies)
            except CountersUnavailable as error:
                raise UsageUnavailable() from error

    def rows(self, user: str, first_day: int, last_day: int) -> list[Entry]:
        try:
            with self._lock:
                found = self._db.execute(
                    f"SELECT day, key_id, model, modality, {', '.join(_COLUMNS)} FROM usage"
                    " WHERE user_id = ? AND day BETWEEN ? AND ?",
                    (user, first_day, last_day),
                ).fetchall()
        except sqlite3.Error as error:
            raise UsageUnavailable() from error
        return [
            Entry(day, user, key_id, model, modality, dict(zip(METRICS, counts, strict=True)))
            for day, key_id, model, modality, *counts in found
        ]

    def activity(self, user: str, query: ActivityQuery) -> tuple[list[dict[str, object]], bool]:
        where, args = ["user_id = ?"], [user]
        for column, value in (("key_id", query.key_id), ("model", query.model)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.status is not None:
            where.append("failed = ?")
            args.append(int(query.status == "error"))
        limit = -1 if query.limit is None else query.limit + 1  # one more says whether more follow
        try:
            with self._lock:
                if query.before is not None:
                    after = self._db.execute(
                        "SELECT time, seq FROM activity WHERE id = ? AND user_id = ?", (query.before, user)
                    ).fetchone()
                    if after is None:
                        raise UnknownEntry()
                    where.append("(time, seq) < (?, ?)")
                    args.extend(after)
                found = self._db.execute(
                    f"SELECT entry FROM activity WHERE {' AND '.join(where)} ORDER BY time DESC, seq DESC LIMIT ?",
                    (*args, limit),
                ).fetchall()
        except sqlite3.Error as error:
            raise UsageUnavailable() from error
        entries: list[dict[str, Any]] = [json.loads(entry) for (entry,) in found]
        if query.limit is not None and len(entries) > query.limit:
            return entries[: query.limit], True
        return entries, False

    def name_key(self, user: str, key_id: str, name: str) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO key_names (user_id, key_id, name, day) VALUES (?, ?, ?, ?)",
                    (user, key_id, name, int(time.time() // DAY_SECONDS)),
                )
        except sqlite3.Error as error:
            raise UsageUnavailable() from error

    def key_names(self, user: str) -> dict[str, str]:
        try:
            with self._lock:
                found = self._db.execute("SELECT key_id, name FROM key_names WHERE user_id = ?", (user,))
                return dict(found.fetchall())
        except sqlite3.Error as error:
            raise UsageUnavailable() from error
