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

from lib.counters.upstash import rest_client
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
    from upstash_redis.client import Pipeline

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
        try:
            self._redis = rest_client(url, token, timeout)
        except Exception as error:
            raise UsageUnavailable() from error

    def _call(self, batch: Pipeline) -> list[Any]:
        """One round trip, or UsageUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise UsageUnavailable()
        try:
            answer = batch.exec()
        # Whatever went wrong underneath (timeout, refusal, error reply, an error page)
        # means the same here: the store cannot be used now.
        except Exception as error:
            self._breaker.failed()
            raise UsageUnavailable() from error
        self._breaker.succeeded()
        return answer

    def add(self, entries: list[Entry]) -> None:
        """Add the entries' counts and keep their activity in one round trip: one transaction for all of them."""
        transaction = self._redis.multi()
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
                    transaction.hincrby(key, prefix + name, entry.counts[name])
            keys.append(key)
        for key in dict.fromkeys(keys):
            transaction.expire(key, KEEP_DAYS * DAY_SECONDS, nx=True)
        oldest = int((time.time() - ACTIVITY_DAYS * DAY_SECONDS) * 1000)
        for user, triples in activity.items():
            limits = [str(oldest), str(ACTIVITY_KEPT), str(KEEP_DAYS * DAY_SECONDS)]
            transaction.eval(_KEEP, keys=_activity_keys(user), args=limits + triples)
        for entry in entries:
            if entry.tally is not None:  # a key's token quota: its tokens, as the answer ended
                tally, ttl = entry.tally
                transaction.incrby(tally, entry.tokens)
                transaction.expire(tally, ttl, nx=True)
        self._call(transaction)  # on failure the records are lost, and said so in the log

    def rows(self, user: str, first_day: int, last_day: int) -> list[Entry]:
        days = range(first_day, last_day + 1)
        pipeline = self._redis.pipeline()
        for day in days:
            pipeline.hgetall(_key(user, day))
        hashes = self._call(pipeline)
        rows: dict[tuple[int, str, str, str], dict[str, int]] = {}
        for day, fields in zip(days, hashes, strict=True):
            for name, value in (fields or {}).items():
                key_id, model, modality, metric = name.rsplit("|", 3)
                rows.setdefault((day, key_id, model, modality), {})[metric] = int(value)
        return [Entry(day, user, *row, counts) for (day, *row), counts in rows.items()]

    def activity(self, user: str, query: ActivityQuery) -> tuple[list[dict[str, object]], bool]:
        """Batches of the user's entries, newest first, until the page is full or none are left."""
        found: list[dict[str, Any]] = []
        after = query.before or ""
        while True:
            pipeline = self._redis.pipeline()
            pipeline.eval(_PAGE_AFTER, keys=_activity_keys(user), args=[after, str(_PAGE)])
            (batch,) = self._call(pipeline)
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
        transaction = self._redis.multi()
        transaction.hset(NAMES_PREFIX + user, key_id, name)
        transaction.expire(NAMES_PREFIX + user, KEEP_DAYS * DAY_SECONDS)
        self._call(transaction)

    def key_names(self, user: str) -> dict[str, str]:
        pipeline = self._redis.pipeline()
        pipeline.hgetall(NAMES_PREFIX + user)
        (names,) = self._call(pipeline)
        return names or {}
