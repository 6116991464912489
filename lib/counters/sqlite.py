"""Counts and markers in one SQLite file: the embedded backend, shared by every thread and process.

Each operation is one atomic statement (an upsert that returns the new count), so
concurrent threads and processes never admit more than a limit, nor refuse below
it. A row lives until its `expires` (Unix s), as a Redis key with a TTL would;
expired rows read as absent and are swept once a minute per process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from lib.counters import Add, CountersUnavailable, Mark, Op, window_key
from lib.sqlite_file import open_sqlite


class SqliteCounters:
    _SCHEMA = """
        DROP TABLE IF EXISTS counters;
        CREATE TABLE IF NOT EXISTS tallies (
            key TEXT PRIMARY KEY,
            value NOT NULL,
            expires INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS tallies_expires ON tallies (expires);
    """
    # An expired row that was not swept yet starts again, as a Redis key past its TTL would.
    _ADD = """
        INSERT INTO tallies (key, value, expires) VALUES (:key, :by, :now + :ttl)
        ON CONFLICT (key) DO UPDATE SET
            value = CASE WHEN expires <= :now THEN excluded.value ELSE value + excluded.value END,
            expires = CASE WHEN expires <= :now THEN excluded.expires ELSE expires END
        RETURNING value
    """
    _MARK = """
        INSERT INTO tallies (key, value, expires) VALUES (:key, :value, :now + :ttl)
        ON CONFLICT (key) DO UPDATE SET
            value = CASE WHEN expires <= :now THEN excluded.value ELSE max(value, excluded.value) END,
            expires = excluded.expires
    """
    _GET = "SELECT value FROM tallies WHERE key = ? AND expires > ?"

    def __init__(self, path: Path) -> None:
        try:
            self._connection = open_sqlite(path, self._SCHEMA)
            # Counts are worth little after a power cut; a commit need not wait for the disk.
            self._connection.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as error:
            raise CountersUnavailable() from error
        self._lock = threading.Lock()
        self._swept = 0

    def run(self, ops: Sequence[Op]) -> list[float | None]:
        """Each operation in turn, one statement each, under the process's lock."""
        now = int(time.time())
        answers: list[float | None] = []
        try:
            with self._lock:
                execute = self._connection.execute
                for op in ops:
                    if isinstance(op, Add):
                        params = {"key": op.key, "by": op.by, "now": now, "ttl": op.ttl}
                        answers.append(execute(self._ADD, params).fetchone()[0])
                    elif isinstance(op, Mark):
                        execute(self._MARK, {"key": op.key, "value": op.value, "now": now, "ttl": op.ttl})
                        answers.append(None)
                    else:
                        row = execute(self._GET, (op.key, now)).fetchone()
                        answers.append(row[0] if row else 0)
                if now - self._swept >= 60:  # once a minute and process: drop what has expired
                    self._swept = now
                    execute("DELETE FROM tallies WHERE expires <= ?", (now,))
        except sqlite3.Error as error:
            raise CountersUnavailable() from error
        return answers

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        return int(self.run([Add(window_key(bucket, window))])[0] or 0)
