"""Usage records: what every chat, image and video request used, per UTC day, user, key, model, modality.

A route starts a `Meter` once the request passed its rate limit; from then on every
answer is recorded, success or error, once it has been sent (the server closed its
body): locally by the process's writer thread, in batches; on Vercel before the
invocation ends. The first and last bytes never wait for the store. A store
failure is logged and never changes an answer. Anonymous traffic is added up
under `anonymous`, with no key, IP or other identifier.

The records live in Upstash Redis when it is configured (`upstash.py`), else in
SQLite under CLOUDGPT_DATA_DIR (`sqlite.py`); a backend is imported only when chosen.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Protocol

from lib.errors import ServiceUnavailable
from lib.instance import kept
from lib.settings import Settings, settings

if TYPE_CHECKING:
    from lib.caller import Caller
    from lib.web import Request, Response

METRICS = ("requests", "errors", "promptTokens", "completionTokens", "images", "videoSeconds")
ANONYMOUS = "anonymous"
KEEP_DAYS = 100  # at least 90 (the longest `days` a caller can ask for), with a margin
DAY_SECONDS = 86_400
_BATCH = 500  # records written together at most, so one write stays well within a store's timeout
# How long the writer lets a first record wait for others. Waking the writer for each record
# would cost every request a thread switch while the next one is being answered.
_GATHER_SECONDS = 0.02
log = logging.getLogger("cloudgpt")


class UsageUnavailable(ServiceUnavailable):
    """The usage store could not be read or written: unreachable, too slow, or failing."""

    code = "usage_store_unavailable"

    def __init__(self) -> None:
        super().__init__("The usage store cannot be used right now.")


@dataclass(frozen=True)
class Entry:
    """One request's counts, under the row it adds to."""

    day: int  # Unix day (UTC)
    user: str  # a user id, or ANONYMOUS
    key_id: str  # "" for anonymous traffic
    model: str  # a catalog id; "" when the request failed before naming one
    modality: str
    counts: dict[str, int]
    # A key's token quota: the count its tokens are added to (lib/keys/records.Quota), and its lifetime.
    tally: tuple[str, int] | None = None

    @property
    def tokens(self) -> int:
        return self.counts.get("promptTokens", 0) + self.counts.get("completionTokens", 0)


class UsageStore(Protocol):
    def add(self, entries: list[Entry]) -> None:
        """Add each entry's counts to its row, and its tokens to its `tally`, atomically, in one write;
        raises UsageUnavailable."""

    def rows(self, user: str, first_day: int, last_day: int) -> list[Entry]:
        """The user's rows from `first_day` to `last_day` (Unix days, inclusive)."""


def store(current: Settings) -> UsageStore:
    """The configured store: Upstash beside the counters; on Vercel nothing else, as a disk is per instance."""
    url, token = current.upstash_redis_rest_url, current.upstash_redis_rest_token
    if url and token:
        from lib.counters import upstash_breaker
        from lib.usage.upstash import UpstashUsage

        timeout, breaker = current.upstash_redis_timeout, upstash_breaker(current)
        return kept(
            ("usage", "upstash", url, token, timeout), lambda: UpstashUsage(url, token, timeout, breaker)
        )
    if current.on_vercel:
        raise ServiceUnavailable(
            "Usage records are not configured: on Vercel they need Upstash Redis "
            "(UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN).",
            code="usage_store_not_configured",
        )
    from lib.usage.sqlite import SqliteUsage

    path = current.data_dir / "usage.sqlite3"
    return kept(("usage", "sqlite", path), lambda: SqliteUsage(path))


def today() -> int:
    return int(time.time() // DAY_SECONDS)


def iso(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def tokens(usage: object) -> dict[str, int]:
    """`promptTokens` and `completionTokens` from a provider's `usage`; nothing it did not state."""
    if not isinstance(usage, dict):
        return {}
    found = {}
    for ours, theirs in (("promptTokens", "prompt_tokens"), ("completionTokens", "completion_tokens")):
        value = usage.get(theirs)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            found[ours] = value
    return found


@dataclass
class Meter:
    """One request's usage, filled in while it is answered and recorded once it was sent."""

    caller: Caller
    modality: str
    model: str = ""
    delivered: dict[str, int] = field(default_factory=dict)  # counted only if the answer succeeds

    def sent(self, response: Response, failed: bool) -> None:
        """Record the answer without making the caller wait for the store's round trip.

        Servers end a body only once close() has returned (a chunked body's last
        bytes go out then), so locally the record goes to the process's writer
        thread, which writes whatever is waiting in one round trip. On Vercel it
        happens in close() itself: an instance may be suspended as soon as the
        invocation ends, and a record must not be lost with it. There a sized body's
        last byte has already left, and a stream's last event (`data: [DONE]`) too:
        only the closing of a stream's connection waits for the store.
        """
        counts = {"requests": 1, "errors": int(failed)}
        counts |= {
            name: response.used[name]
            for name in ("promptTokens", "completionTokens")
            if name in response.used
        }
        if not failed:
            counts |= self.delivered
        user, key_id = (
            (self.caller.id, self.caller.key_id or "") if self.caller.authenticated else (ANONYMOUS, "")
        )
        entry = Entry(today(), user, key_id, self.model, self.modality, counts, self._tally(counts))
        if settings().on_vercel:
            _record([entry])
        else:
            _writer().put(entry)

    def _tally(self, counts: dict[str, int]) -> tuple[str, int] | None:
        """Where this answer's tokens count against its key's token quota, if it has one."""
        key = self.caller.key
        used = counts.get("promptTokens", 0) + counts.get("completionTokens", 0)
        if key is None or key.quota is None or key.quota.tokens is None or not used:
            return None
        now = time.time()
        _, tokens, end = key.quota.tallies(key.key_id, now)
        return tokens, end - int(now) + DAY_SECONDS


def meter(request: Request, caller: Caller, modality: str) -> Meter:
    """Record every answer to `request` from now on (call it once the rate limit admitted it)."""
    started = Meter(caller, modality)
    request.on_sent = started.sent
    return started


def _record(entries: list[Entry]) -> None:
    try:
        store(settings()).add(entries)
    except Exception as error:  # a lost record must never reach the caller's answer
        what = f"a {entries[0].modality} request" if len(entries) == 1 else f"{len(entries)} requests"
        log.warning("usage not recorded for %s: %r", what, error.__cause__ or error)


_queue: queue.SimpleQueue[Entry] | None = None
_queue_lock = threading.Lock()


def _writer() -> queue.SimpleQueue[Entry]:
    """The local server's one writer per process, started by the first record.

    One thread for the process's life rather than one per request: once a record
    arrives it lets others gather for `_GATHER_SECONDS`, then writes every record
    waiting in one round trip, so a busy server pays one wake-up and one write per
    batch, not a thread switch and a write per request.
    """
    global _queue
    with _queue_lock:
        if _queue is None:
            _queue = queue.SimpleQueue()
            threading.Thread(target=_write_forever, args=(_queue,), name="usage-writer", daemon=True).start()
        return _queue


def _write_forever(waiting: queue.SimpleQueue[Entry]) -> None:
    while True:
        batch = [waiting.get()]
        time.sleep(_GATHER_SECONDS)
        while len(batch) < _BATCH:
            try:
                batch.append(waiting.get_nowait())
            except queue.Empty:
                break
        _record(batch)


def report(user: str, days: int, key_id: str | None = None) -> dict[str, object]:
    """The user's usage over the last `days` UTC days (today included), as GET /api/usage answers it."""
    last = today()
    first = last - days + 1
    data = []
    totals = dict.fromkeys(METRICS, 0)
    for row in sorted(
        store(settings()).rows(user, first, last), key=lambda r: (-r.day, r.key_id, r.model, r.modality)
    ):
        if (key_id is not None and row.key_id != key_id) or not any(row.counts.values()):
            continue
        counts = {name: row.counts.get(name, 0) for name in METRICS}
        data.append({
            "date": iso(row.day), "keyId": row.key_id, "model": row.model or None,
            "modality": row.modality, **counts,
        })  # fmt: skip
        for name in METRICS:
            totals[name] += counts[name]
    return {"object": "usage", "from": iso(first), "to": iso(last), "data": data, "totals": totals}
