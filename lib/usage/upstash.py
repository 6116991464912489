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

from typing import TYPE_CHECKING, Any

from lib.counters.upstash import rest_client
from lib.usage import DAY_SECONDS, KEEP_DAYS, METRICS, Entry, UsageUnavailable

if TYPE_CHECKING:
    from upstash_redis.client import Pipeline

    from lib.breaker import Breaker

KEY_PREFIX = "cgpt:usage:"


def _key(user: str, day: int) -> str:
    return f"{KEY_PREFIX}{user}:{day}"


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
        """Add the entries' counts in one round trip: one transaction for all of them."""
        transaction = self._redis.multi()
        keys = []
        for entry in entries:
            key = _key(entry.user, entry.day)
            prefix = f"{entry.key_id}|{entry.model}|{entry.modality}|"
            for name in METRICS:
                if entry.counts.get(name):
                    transaction.hincrby(key, prefix + name, entry.counts[name])
            keys.append(key)
        for key in dict.fromkeys(keys):
            transaction.expire(key, KEEP_DAYS * DAY_SECONDS, nx=True)
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
