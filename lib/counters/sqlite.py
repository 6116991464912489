"""Window counters in one SQLite file: the embedded backend, shared by every thread and process.

Each request is one atomic upsert that returns the new count, so concurrent threads
and processes can never admit more than the limit, nor refuse below it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from lib.counters import CountersUnavailable
from lib.sqlite_file import open_sqlite


class SqliteCounters:
    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS counters (
            bucket TEXT NOT NULL,
            window INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (bucket, window)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS counters_window ON counters (window);
    """
    _HIT = """
        INSERT INTO counters (bucket, window, count) VALUES (?, ?, 1)
        ON CONFLICT (bucket, window) DO UPDATE SET count = count + 1
        RETURNING count
    """

    def __init__(self, path: Path) -> None:
        try:
            self._connection = open_sqlite(path, self._SCHEMA)
            # Counts are worth little after a power cut; a commit need not wait for the disk.
            self._connection.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as error:
            raise CountersUnavailable() from error
        self._lock = threading.Lock()
        self._swept_window = 0

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        try:
            with self._lock:
                (count,) = self._connection.execute(self._HIT, (bucket, window)).fetchone()
                if window != self._swept_window:  # once per window and process: drop old windows
                    self._swept_window = window
                    self._connection.execute("DELETE FROM counters WHERE window < ?", (window,))
        except sqlite3.Error as error:
            raise CountersUnavailable() from error
        return count

    def peek(self, bucket: str, window: int) -> int:
        """The count in `bucket`'s `window` so far, without counting."""
        try:
            with self._lock:
                row = self._connection.execute(
                    "SELECT count FROM counters WHERE bucket = ? AND window = ?", (bucket, window)
                ).fetchone()
        except sqlite3.Error as error:
            raise CountersUnavailable() from error
        return row[0] if row else 0
