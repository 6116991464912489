"""Usage rows in one SQLite file: the embedded store, shared by every thread and process.

Records add to their rows with upserts in one transaction, atomic across
processes, so concurrent requests are never lost; rows older than KEEP_DAYS are swept once a day per process.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from lib.counters import Add, CountersUnavailable, counters
from lib.settings import settings
from lib.sqlite_file import open_sqlite
from lib.usage import KEEP_DAYS, METRICS, Entry, UsageUnavailable

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
        day = max(entry.day for entry in entries)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(self._ADD, rows)
                    if day != self._swept_day:  # once a day and process: drop what is past keeping
                        self._swept_day = day
                        self._db.execute("DELETE FROM usage WHERE day < ?", (day - KEEP_DAYS,))
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
