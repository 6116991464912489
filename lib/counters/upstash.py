"""Window counters in Upstash Redis over its REST API, shared by every instance anywhere.

One request is one HTTP round trip: a transaction (`/multi-exec`) of `INCR` on the
window's key and `EXPIRE ... NX`, so the first hit gives the key its lifetime and
later hits leave it. Redis runs the two atomically, so the counts that concurrent
instances see are 1, 2, 3, ... with none lost or repeated: the limit admits exactly
itself. Keys look like `cgpt:rl:chat:anonymous:203.0.113.7:1764108600` (the window's
start in Unix seconds) and vanish by themselves once their window is over.
"""

from __future__ import annotations

import httpx
from upstash_redis import Redis

from lib.counters import CountersUnavailable

KEY_PREFIX = "cgpt:rl:"
# A window lasts 60 s; its key lives twice that from its first hit, so an instance
# whose clock lags a little still finds the count rather than starting a new one.
KEY_TTL_SECONDS = 120


def rest_client(url: str, token: str, timeout: float) -> Redis:
    """A client for Upstash's REST API, every call bounded by `timeout`; the usage records use it too."""
    # No retries: INCR and HINCRBY are not idempotent, and a retry after a lost answer
    # would count one request twice. No telemetry or sync-token headers: nothing reads them.
    redis = Redis(url, token, rest_retries=0, allow_telemetry=False, read_your_writes=False)
    # The client builds its httpx.Client with timeout=None and takes no setting
    # for it, so its pool is bounded here; if a release moves it, fail loudly.
    http = getattr(getattr(redis, "_http", None), "_client", None)
    if not isinstance(http, httpx.Client):
        raise CountersUnavailable() from TypeError("upstash-redis no longer exposes its httpx client")
    http.timeout = httpx.Timeout(timeout)
    return redis


class UpstashCounters:
    def __init__(self, url: str, token: str, timeout: float) -> None:
        self._redis = rest_client(url, token, timeout)

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        key = f"{KEY_PREFIX}{bucket}:{window}"
        transaction = self._redis.multi()
        transaction.incr(key)
        transaction.expire(key, KEY_TTL_SECONDS, nx=True)
        try:
            count, _ = transaction.exec()
        # The client lets through whatever went wrong underneath: httpx's timeouts and
        # refusals, a JSON error for an error page, its own error, or a TypeError for
        # an error body where it expected a list. Each means the same here.
        except Exception as error:
            raise CountersUnavailable() from error
        if not isinstance(count, int) or count < 1:
            raise CountersUnavailable() from ValueError(f"INCR answered {count!r}")
        return count
