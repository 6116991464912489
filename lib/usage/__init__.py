"""Usage records: what every chat, image and video request used, per UTC day, user, key, model, modality.

Beside them, each request of a user's key leaves an activity entry (its id, provider,
status, latency, tokens; never a prompt or a completion), written in the same
round trip as its usage, and kept at least ACTIVITY_DAYS days and at least the
user's last ACTIVITY_KEPT entries.

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
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from lib import catalog
from lib.errors import BadRequest, ServiceUnavailable
from lib.instance import kept
from lib.settings import Settings, settings

if TYPE_CHECKING:
    from lib.caller import Caller
    from lib.usage.query import ActivityQuery
    from lib.web import Request, Response

METRICS = ("requests", "errors", "promptTokens", "completionTokens", "images", "videoSeconds")
USAGE_COLUMNS = ("date", "keyId", "model", "modality", *METRICS)  # a usage report's CSV
ACTIVITY_COLUMNS = (
    "id", "time", "keyId", "model", "modality", "provider", "status", "error", "latencyMs", "firstByteMs",
    "promptTokens", "completionTokens", "images", "videoSeconds", "stream", "fallback",
)  # fmt: skip
ANONYMOUS = "anonymous"
KEEP_DAYS = 100  # at least 90 (the longest `days` a caller can ask for), with a margin
DAY_SECONDS = 86_400
ACTIVITY_DAYS = 7
ACTIVITY_KEPT = 1000
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


class UnknownEntry(BadRequest):
    """`before` names none of the user's activity entries: another's, or one no longer kept."""

    code = "invalid_parameter"

    def __init__(self) -> None:
        super().__init__("before names none of your activity entries.", param="before")


@dataclass(frozen=True)
class Entry:
    """One request's counts, under the row it adds to."""

    day: int  # Unix day (UTC)
    user: str  # a user id, or ANONYMOUS
    key_id: str  # "" for anonymous traffic
    model: str  # a catalog id; "" when the request failed before naming one
    modality: str
    counts: dict[str, int]
    activity: dict[str, object] | None = None  # the request's activity entry; None for anonymous traffic
    # A key's token quota: the count its tokens are added to (lib/keys/records.Quota), and its lifetime.
    tally: tuple[str, int] | None = None

    @property
    def tokens(self) -> int:
        return self.counts.get("promptTokens", 0) + self.counts.get("completionTokens", 0)


class UsageStore(Protocol):
    def add(self, entries: list[Entry]) -> None:
        """Add each entry's counts to its row, keep its activity and add its tokens to its `tally`,
        atomically, in one write; raises UsageUnavailable."""

    def rows(self, user: str, first_day: int, last_day: int) -> list[Entry]:
        """The user's rows from `first_day` to `last_day` (Unix days, inclusive)."""

    def activity(self, user: str, query: ActivityQuery) -> tuple[list[dict[str, object]], bool]:
        """The user's activity entries matching `query`, newest first, and whether more follow;
        raises UnknownEntry when `query.before` names none of the user's entries."""

    def name_key(self, user: str, key_id: str, name: str) -> None:
        """Keep a revoked key's name, for as long as its usage is kept."""

    def key_names(self, user: str) -> dict[str, str]:
        """The names of the user's revoked keys, by id."""


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
    request_id: str
    started: float  # the request's perf_counter() on arrival
    time: int  # its arrival in Unix milliseconds
    model: str = ""
    stream: bool = False
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
        if self.caller.authenticated:
            user, key_id = self.caller.id, self.caller.key_id or ""
            activity = self._activity(response, failed, key_id, counts)
        else:
            user, key_id, activity = ANONYMOUS, "", None
        entry = Entry(today(), user, key_id, self.model, self.modality, counts, activity, self._tally(counts))
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

    def _activity(
        self, response: Response, failed: bool, key_id: str, counts: dict[str, int]
    ) -> dict[str, object]:
        """The request's activity entry: what happened to it, nothing of what it said."""
        ended = response.ended_at or time.perf_counter()
        latency = _ms(ended - self.started)
        first_byte = _ms(response.first_byte_at - self.started) if response.first_byte_at else latency
        provider = response.headers.get("X-CloudGPT-Provider")
        model = catalog.find(self.model) if self.model else None
        return {
            "id": self.request_id, "time": self.time, "keyId": key_id, "model": self.model or None,
            "modality": self.modality, "provider": provider, "status": response.status,
            "error": response.error or ("internal_error" if failed else None),
            "latencyMs": latency, "firstByteMs": min(first_byte, latency),
            **{name: counts.get(name, 0) for name in _DELIVERED},
            "stream": self.stream,
            "fallback": bool(provider and model and provider != model.provider),
        }  # fmt: skip


_DELIVERED = ("promptTokens", "completionTokens", "images", "videoSeconds")


def _ms(seconds: float) -> int:
    """Whole milliseconds, rounded up: whatever took any time took at least 1 ms."""
    return max(1, math.ceil(seconds * 1000))


def meter(request: Request, caller: Caller, modality: str) -> Meter:
    """Record every answer to `request` from now on (call it once the rate limit admitted it)."""
    arrived = int((time.time() - (time.perf_counter() - request.started)) * 1000)
    started = Meter(caller, modality, request.id, request.started, arrived)
    request.on_sent = started.sent
    return started


def revoked(user: str, key_id: str, name: str) -> None:
    """Keep the name of a key just revoked beside its usage: its rows keep the name the user gave it.

    The key store forgets a revoked key; its usage stays for KEEP_DAYS. A failure is
    logged and never undoes the revocation.
    """
    try:
        store(settings()).name_key(user, key_id, name)
    except Exception as error:
        log.warning("name of revoked key %s not kept: %r", key_id, error.__cause__ or error)


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
    current = store(settings())
    for row in sorted(current.rows(user, first, last), key=lambda r: (-r.day, r.key_id, r.model, r.modality)):
        if (key_id is not None and row.key_id != key_id) or not any(row.counts.values()):
            continue
        counts = {name: row.counts.get(name, 0) for name in METRICS}
        data.append({
            "date": iso(row.day), "keyId": row.key_id, "model": row.model or None,
            "modality": row.modality, **counts,
        })  # fmt: skip
        for name in METRICS:
            totals[name] += counts[name]
    used = {row["keyId"] for row in data}
    revoked = {key: name for key, name in current.key_names(user).items() if key in used}
    return {
        "object": "usage", "from": iso(first), "to": iso(last), "data": data, "totals": totals,
        "revokedKeys": revoked,
    }  # fmt: skip


def activity(user: str, query: ActivityQuery) -> dict[str, object]:
    """A page of the user's activity, newest first, as GET /api/activity answers it."""
    data, more = store(settings()).activity(user, query)
    return {"object": "list", "data": data, "hasMore": more}


def _iso_time(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def activity_rows(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    """Entries as a spreadsheet reads them: the time in ISO 8601 (UTC), flags as true or false."""
    return [
        {
            **entry,
            "time": _iso_time(entry["time"]),  # type: ignore[arg-type]
            "stream": str(entry["stream"]).lower(),
            "fallback": str(entry["fallback"]).lower(),
        }
        for entry in entries
    ]
