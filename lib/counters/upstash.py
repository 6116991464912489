"""Window counters in Upstash Redis over its REST API, shared by every instance anywhere.

One request is one HTTP round trip: a transaction (`/multi-exec`) of `INCR` on the
window's key and `EXPIRE ... NX`, so the first hit gives the key its lifetime and
later hits leave it. Redis runs the two atomically, so the counts that concurrent
instances see are 1, 2, 3, ... with none lost or repeated: the limit admits exactly
itself. Keys look like `cgpt:rl:chat:anonymous:203.0.113.7:1764108600` (the window's
start in Unix seconds) and vanish by themselves once their window is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from upstash_redis import Redis

from lib.breaker import Breaker
from lib.counters import CountersUnavailable
from lib.instance import kept

KEY_PREFIX = "cgpt:rl:"
# A window lasts 60 s; its key lives twice that from its first hit, so an instance
# whose clock lags a little still finds the count rather than starting a new one.
KEY_TTL_SECONDS = 120


def rest_client(url: str, token: str, timeout: float) -> Redis:
    """The process's one client for Upstash's REST API, every call bounded by `timeout`.

    The counters and the usage records share it: one httpx client, so a cold instance
    builds one TLS context (about 20 ms of CPU) for Upstash, not one per store.
    """
    return kept(("upstash", url, token, timeout), lambda: _client(url, token, timeout))


def _client(url: str, token: str, timeout: float) -> Redis:
    # No retries: INCR and HINCRBY are not idempotent, and a retry after a lost answer
    # would count one request twice. No telemetry or sync-token headers: nothing reads them.
    redis = Redis(url, token, rest_retries=0, allow_telemetry=False, read_your_writes=False)
    # The client builds its httpx.Client with timeout=None and takes no setting
    # for it, so its calls are bounded here; if a release moves it, fail loudly.
    http = getattr(getattr(redis, "_http", None), "_client", None)
    if not isinstance(http, httpx.Client):
        raise CountersUnavailable() from TypeError("upstash-redis no longer exposes its httpx client")
    http.event_hooks = {"request": [_bounded_as_a_whole(timeout)], "response": []}
    return redis


class UpstashCounters:
    def __init__(self, url: str, token: str, timeout: float, breaker: Breaker) -> None:
        self._redis = rest_client(url, token, timeout)
        self._breaker = breaker

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        key = f"{KEY_PREFIX}{bucket}:{window}"
        transaction = self._redis.multi()
        transaction.incr(key)
        transaction.expire(key, KEY_TTL_SECONDS, nx=True)
        answer = self._call(transaction.exec)
        return self._checked(answer[0] if isinstance(answer, list) and len(answer) == 2 else answer, 1)

    def peek(self, bucket: str, window: int) -> int:
        """The count in `bucket`'s `window` so far (0 before its first hit), without counting."""
        value = self._call(lambda: self._redis.get(f"{KEY_PREFIX}{bucket}:{window}"))
        if value is None:
            self._breaker.succeeded()
            return 0
        # GET answers a counter as its digits.
        return self._checked(
            int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value, 0
        )

    def _call(self, command: Callable[[], Any]) -> Any:
        """One round trip, or CountersUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise CountersUnavailable() from ConnectionError("Upstash failed repeatedly; cooling down")
        try:
            return command()
        # The client lets through whatever went wrong underneath: httpx's timeouts and
        # refusals, a JSON error for an error page, its own error, or a TypeError for
        # an error body where it expected a list. Each means the same here.
        except Exception as error:
            self._breaker.failed()
            raise CountersUnavailable() from error

    def _checked(self, count: object, minimum: int) -> int:
        """`count` if it is an integer of at least `minimum`; anything else is Upstash failing."""
        if isinstance(count, bool) or not isinstance(count, int) or count < minimum:
            self._breaker.failed()
            raise CountersUnavailable() from ValueError(f"Upstash answered the counter {count!r}")
        self._breaker.succeeded()
        return count


def _bounded_as_a_whole(seconds: float) -> Callable[[httpx.Request], None]:
    """A request hook bounding a whole call, not each of its phases, to `seconds`.

    httpx applies each timeout to one phase (waiting for a connection, connecting,
    sending, each read), so three phases could take three times the budget. Here
    connecting gets a quarter for TCP and a quarter for TLS; sending and reading
    get what is left of the budget when each starts (httpcore reads the timeouts
    when each phase begins, and its trace extension says when that is).
    """

    def hook(request: httpx.Request) -> None:
        deadline = time.monotonic() + seconds
        timeouts = {"pool": seconds / 4, "connect": seconds / 4, "write": seconds, "read": seconds}
        request.extensions["timeout"] = timeouts

        def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith(".started") and event.startswith("http11."):
                left = max(deadline - time.monotonic(), 0.001)
                timeouts["write"] = timeouts["read"] = left

        request.extensions["trace"] = trace

    return hook
