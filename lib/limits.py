"""Per-minute rate limits: one fixed window per (caller, modality, UTC minute).

The embedded backend keeps the counters in SQLite under CLOUDGPT_DATA_DIR. Each
request is one atomic upsert that returns the new count, so concurrent threads and
processes can never admit more than the limit, nor refuse below it.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lib.errors import RateLimited, ServiceUnavailable
from lib.identity import Caller
from lib.settings import settings

WINDOW_SECONDS = 60
log = logging.getLogger("cloudgpt")


@dataclass(frozen=True)
class Decision:
    """The outcome of counting one request against its window."""

    limit: int
    count: int
    reset: int  # Unix seconds at which the window ends
    now: float

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self.count)),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - self.now)))
        return headers


class SqliteCounters:
    """Window counters in one SQLite file, shared by every thread and process using it."""

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
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per process behind a lock: threads queue on the lock in
        # microseconds instead of in SQLite's busy handler, which sleeps up to 100 ms.
        # Other processes still wait on SQLite's own file lock (busy timeout 5 s).
        self._connection = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._swept_window = 0
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(self._SCHEMA)

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        with self._lock:
            (count,) = self._connection.execute(self._HIT, (bucket, window)).fetchone()
            if window != self._swept_window:  # once per window and process: drop old windows
                self._swept_window = window
                self._connection.execute("DELETE FROM counters WHERE window < ?", (window,))
        return count


_stores: dict[Path, SqliteCounters] = {}
_stores_lock = threading.Lock()


def _sqlite_counters(path: Path) -> SqliteCounters:
    """The process's one store for `path`, opened by the first request that needs it."""
    with _stores_lock:  # concurrent first requests must not open (and migrate) it twice
        if path not in _stores:
            _stores[path] = SqliteCounters(path)
        return _stores[path]


def _counters() -> SqliteCounters:
    current = settings()
    if current.on_vercel:
        raise ServiceUnavailable(
            "Rate limiting is not configured: on Vercel it needs Upstash Redis "
            "(UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN).",
            code="rate_limiter_not_configured",
        )
    return _sqlite_counters(current.data_dir / "limits.sqlite3")


def enforce(caller: Caller, modality: str) -> dict[str, str]:
    """Count this request; its rate-limit headers, or a 429 once the window is spent."""
    now = time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    limits = settings().limits[modality]
    limit = limits.authenticated if caller.authenticated else limits.anonymous
    try:
        count = _counters().hit(f"{modality}:{caller.bucket}", window)
    except (sqlite3.Error, OSError):
        log.exception("rate-limit counters unavailable")
        raise ServiceUnavailable(
            "The rate limiter's store cannot be used right now.", code="rate_limiter_unavailable"
        ) from None
    decision = Decision(limit=limit, count=count, reset=window + WINDOW_SECONDS, now=now)
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"Rate limit of {limit} {modality} requests per minute reached; "
            f"retry after {headers['Retry-After']} s.",
            headers=headers,
        )
    return headers
