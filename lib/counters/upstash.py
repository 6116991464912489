"""Counts and markers in Upstash Redis over its REST API, shared by every instance anywhere.

A request's plan is one HTTP round trip: a transaction (`/multi-exec`) with, per
count, `INCRBY` and `EXPIRE ... NX` (the first add gives the key its lifetime,
later ones leave it). Redis runs them atomically, so the counts that concurrent
instances see are 1, 2, 3, ... with none lost or repeated: a limit admits exactly
itself. Window keys look like `cgpt:rl:chat:anonymous:203.0.113.7:1764108600`
(the window's start in Unix seconds) and vanish by themselves once it is over.
A key's change marker is a one-member sorted set, so `ZADD ... GT` only ever
raises it, whatever order two changes' writes arrive in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
from upstash_redis import Redis

from lib.breaker import Breaker
from lib.counters import Add, CountersUnavailable, Get, Mark, Op, window_key
from lib.instance import kept

_MEMBER = "v"  # a marker is a sorted set of this one member: ZADD ... GT raises it, never lowers it


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

    def run(self, ops: Sequence[Op]) -> list[float | None]:
        """The operations as one transaction: `INCR` (or `INCRBY`) and `EXPIRE ... NX` per `Add`,
        `GET` per `Get`, `ZADD ... GT` and `EXPIRE` per `Mark`, `ZSCORE` per `Seen`; a lone `Get` as itself."""
        if len(ops) == 1 and isinstance(ops[0], Get):  # a lone read needs no transaction
            key = ops[0].key
            answer = [self._call(lambda: self._redis.get(key))]
        else:
            transaction = self._redis.multi()
            for op in ops:
                if isinstance(op, Add):
                    transaction.incr(op.key) if op.by == 1 else transaction.incrby(op.key, op.by)
                    transaction.expire(op.key, op.ttl, nx=True)
                elif isinstance(op, Get):
                    transaction.get(op.key)
                elif isinstance(op, Mark):
                    transaction.zadd(op.key, {_MEMBER: op.value}, gt=True)
                    transaction.expire(op.key, op.ttl)
                else:
                    transaction.zscore(op.key, _MEMBER)
            answer = self._call(transaction.exec)
        replies = iter(answer if isinstance(answer, list) else ())
        try:
            results = [self._answer(op, replies) for op in ops]
        except (StopIteration, ValueError) as error:
            self._breaker.failed()
            raise CountersUnavailable() from ValueError(f"Upstash answered {answer!r}: {error}")
        self._breaker.succeeded()
        return results

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        return int(self.run([Add(window_key(bucket, window))])[0] or 0)

    @staticmethod
    def _answer(op: Op, replies: Iterator[Any]) -> float | None:
        """One operation's answer from its replies; ValueError for anything but the command's shape."""
        reply = next(replies)
        if isinstance(op, Add | Mark):
            next(replies)  # EXPIRE's 0 or 1
        if isinstance(op, Mark):
            return None
        if reply is None and not isinstance(op, Add):
            return 0
        if isinstance(op, Get) and isinstance(reply, str) and reply.isascii() and reply.lstrip("-").isdigit():
            reply = int(reply)  # GET answers a count as its digits
        if isinstance(reply, bool) or not isinstance(reply, int | float):
            raise ValueError(f"not a count: {reply!r}")
        if isinstance(op, Add) and (not isinstance(reply, int) or (op.by > 0 and reply < 1)):
            raise ValueError(f"not a count after adding {op.by}: {reply!r}")
        return reply

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
