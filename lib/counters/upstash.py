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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lib.breaker import Breaker
from lib.counters import Add, CountersUnavailable, Get, Mark, Op, window_key
from lib.upstash import Command, Upstash, UpstashError

_MEMBER = "v"  # a marker is a sorted set of this one member: ZADD ... GT raises it, never lowers it


class UpstashCounters:
    def __init__(self, url: str, token: str, timeout: float, breaker: Breaker) -> None:
        self._upstash = Upstash(url, token, timeout)
        self._breaker = breaker

    def run(self, ops: Sequence[Op]) -> list[float | None]:
        """The operations as one transaction: `INCR` (or `INCRBY`) and `EXPIRE ... NX` per `Add`,
        `GET` per `Get`, `ZADD ... GT` and `EXPIRE` per `Mark`, `ZSCORE` per `Seen`; a lone `Get` as itself."""
        commands: list[Command] = []
        for op in ops:
            if isinstance(op, Add):
                commands.append(("INCR", op.key) if op.by == 1 else ("INCRBY", op.key, op.by))
                commands.append(("EXPIRE", op.key, op.ttl, "NX"))
            elif isinstance(op, Get):
                commands.append(("GET", op.key))
            elif isinstance(op, Mark):
                commands.append(("ZADD", op.key, "GT", op.value, _MEMBER))
                commands.append(("EXPIRE", op.key, op.ttl))
            else:
                commands.append(("ZSCORE", op.key, _MEMBER))
        lone_read = len(ops) == 1 and isinstance(ops[0], Get)  # needs no transaction
        answer = self._call(self._upstash.pipeline if lone_read else self._upstash.transaction, commands)
        replies = iter(answer)
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
        elif not isinstance(op, Add | Get) and isinstance(reply, str):
            reply = float(reply)  # ZSCORE answers a score as its text: ValueError for anything else
        if isinstance(reply, bool) or not isinstance(reply, int | float):
            raise ValueError(f"not a count: {reply!r}")
        if isinstance(op, Add) and (not isinstance(reply, int) or (op.by > 0 and reply < 1)):
            raise ValueError(f"not a count after adding {op.by}: {reply!r}")
        return reply

    def _call(self, run: Callable[[list[Command]], list[Any]], commands: list[Command]) -> list[Any]:
        """One round trip, or CountersUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise CountersUnavailable() from ConnectionError("Upstash failed repeatedly; cooling down")
        try:
            return run(commands)
        except UpstashError as error:
            self._breaker.failed()
            raise CountersUnavailable() from error
