"""Usage records in Upstash Redis over its REST API: the same store as the rate-limit counters.

A user's day is one hash, `cgpt:usage:<user>:<Unix day>`, whose fields are
`<key id>|<model>|<modality>|<metric>`. A write is one HTTP round trip, for one
request's record or several waiting ones: a transaction (`/multi-exec`) of one
`HINCRBY` per count, then `EXPIRE ... NX` per hash, which gives the hash
KEEP_DAYS from its first write; for a key with a token quota, `INCRBY` and
`EXPIRE ... NX` on its period's token count (`lib/limits.py` reads it). Redis adds atomically, so
concurrent instances never lose a count. Reading N days is one `/pipeline` of N
`HGETALL`s.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from lib.upstash import Command, Upstash, UpstashError
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
    from collections.abc import Callable

    from lib.breaker import Breaker
    from lib.usage.query import ActivityQuery

KEY_PREFIX = "cgpt:usage:"
ACTIVITY_PREFIX = "cgpt:activity:"
NAMES_PREFIX = "cgpt:keynames:"  # a user's revoked keys' names, by id
_PAGE = 200  # entries a read looks at per round trip

# KEYS: the ids by time, the entries. ARGV: the oldest time kept regardless, how many
# entries are kept regardless, the keys' lifetime in seconds, then (time, id, entry) triples.
_KEEP = """
for i = 4, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
end
local kept = math.max(redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf'), tonumber(ARGV[2]))
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -(kept + 1))) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return kept
"""
# KEYS: the ids by time, the entries. ARGV: the id the page starts after ('' for the
# newest), how many to look at. Answers the ids and their entries, or nil when that id is not there.
_PAGE_AFTER = """
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  if not rank then return false end
  start = rank + 1
end
local ids = redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)
if #ids == 0 then return {{}, {}} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
"""


def _key(user: str, day: int) -> str:
    return f"{KEY_PREFIX}{user}:{day}"


def _activity_keys(user: str) -> list[str]:
    return [f"{ACTIVITY_PREFIX}{user}", f"{ACTIVITY_PREFIX}{user}:entries"]


class UpstashUsage:
    def __init__(self, url: str, token: str, timeout: float, breaker: Breaker) -> None:
        self._breaker = breaker  # the counters' own: one Upstash, one view of its outages
        self._upstash = Upstash(url, token, timeout)

    def _call(self, run: Callable[[list[Command]], list[Any]], commands: list[Command]) -> list[Any]:
        """One round trip, or UsageUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise UsageUnavailable()
        try:
            answer = run(commands)
        except UpstashError as error:
            self._breaker.failed()
            raise UsageUnavailable() from error
        self._breaker.succeeded()
        return answer

    def add(self, entries: list[Entry]) -> None:
        """Add the entries' counts and keep their activity in one round trip: one transaction for all of them."""
        transaction: list[Command] = []
        keys = []
        activity: dict[str, list[str]] = {}
        for entry in entries:
            if entry.activity is not None:
                a = entry.activity
                activity.setdefault(entry.user, []).extend(
                    (str(a["time"]), str(a["id"]), json.dumps(a, separators=(",", ":")))
                )
            key = _key(entry.user, entry.day)
            prefix = f"{entry.key_id}|{entry.model}|{entry.modality}|"
            for name in METRICS:
                if entry.counts.get(name):
                    transaction.append(("HINCRBY", key, prefix + name, entry.counts[name]))
            keys.append(key)
        for key in dict.fromkeys(keys):
            transaction.append(("EXPIRE", key, KEEP_DAYS * DAY_SECONDS, "NX"))
        oldest = int((time.time() - ACTIVITY_DAYS * DAY_SECONDS) * 1000)
        for user, triples in activity.items():
            limits = [str(oldest), str(ACTIVITY_KEPT), str(KEEP_DAYS * DAY_SECONDS)]
            transaction.append(("EVAL", _KEEP, 2, *_activity_keys(user), *limits, *triples))
        for entry in entries:
            if entry.tally is not None:  # a key's token quota: its tokens, as the answer ended
                tally, ttl = entry.tally
                transaction.append(("INCRBY", tally, entry.tokens))
                transaction.append(("EXPIRE", tally, ttl, "NX"))
        # On failure the records are lost, and said so in the log.
        self._call(self._upstash.transaction, transaction)

    def rows(self, user: str, first_day: int, last_day: int) -> list[Entry]:
        days = range(first_day, last_day + 1)
        hashes = self._call(self._upstash.pipeline, [("HGETALL", _key(user, day)) for day in days])
        rows: dict[tuple[int, str, str, str], dict[str, int]] = {}
        for day, fields in zip(days, hashes, strict=True):
            for name, value in _pairs(fields).items():
                key_id, model, modality, metric = name.rsplit("|", 3)
                rows.setdefault((day, key_id, model, modality), {})[metric] = int(value)
        return [Entry(day, user, *row, counts) for (day, *row), counts in rows.items()]

    def activity(self, user: str, query: ActivityQuery) -> tuple[list[dict[str, object]], bool]:
        """Batches of the user's entries, newest first, until the page is full or none are left."""
        found: list[dict[str, Any]] = []
        after = query.before or ""
        while True:
            page = ("EVAL", _PAGE_AFTER, 2, *_activity_keys(user), after, _PAGE)
            (batch,) = self._call(self._upstash.pipeline, [page])
            if batch is None:
                raise UnknownEntry()
            ids, texts = batch
            for text in texts:
                entry = json.loads(text) if text else None
                if entry is None or not query.matches(entry):
                    continue
                if query.limit is not None and len(found) == query.limit:
                    return found, True
                found.append(entry)
            if len(ids) < _PAGE:
                return found, False
            after = ids[-1]

    def name_key(self, user: str, key_id: str, name: str) -> None:
        names = NAMES_PREFIX + user
        self._call(
            self._upstash.transaction,
            [("HSET", names, key_id, name), ("EXPIRE", names, KEEP_DAYS * DAY_SECONDS)],
        )

    def key_names(self, user: str) -> dict[str, str]:
        (names,) = self._call(self._upstash.pipeline, [("HGETALL", NAMES_PREFIX + user)])
        return _pairs(names)


def _pairs(flat: object) -> dict[str, str]:
    """HGETALL's answer, a flat list of field and value, as a dict; UsageUnavailable for anything else."""
    if not isinstance(flat, list) or len(flat) % 2 or not all(isinstance(item, str) for item in flat):
        raise UsageUnavailable() from ValueError(f"HGETALL answered {type(flat).__name__}")
    return dict(zip(flat[::2], flat[1::2], strict=True))
