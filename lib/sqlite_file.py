"""The embedded stores' SQLite files: one connection per process, shared by its threads.

Threads queue on the store's own lock in microseconds instead of in SQLite's busy
handler, which sleeps up to 100 ms; other processes wait on SQLite's file lock
(busy timeout 5 s). WAL lets readers and the writer proceed together.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A connection to `path` with `schema` in place; raises sqlite3.Error or OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(schema)
    return connection
