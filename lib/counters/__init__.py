"""Where the shared tallies live: Upstash Redis when configured, else SQLite on local disk.

A request's whole plan (the rate-limit counts, a key's quota, the marker that says a
key changed) is a list of operations the backend runs in one round trip, each
atomically: `Add` counts (and answers the count including it), `Get` reads a
count, `Mark` raises a key's change marker, `Seen` reads it. What a result means
for the request is the caller's decision (`RATE_LIMIT_FAILURE_MODE`), not the
backend's. Backends are imported only when chosen: the Upstash client is a
cold-start cost a local run never pays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lib.errors import ServiceUnavailable
from lib.instance import kept
from lib.settings import Settings

if TYPE_CHECKING:
    from lib.breaker import Breaker

KEY_PREFIX = "cgpt:"
WINDOW_TTL_SECONDS = 120  # a window's count outlives its minute, so a lagging clock still finds it


class CountersUnavailable(ServiceUnavailable):
    """The counters could not be read or written: unreachable, too slow, or answering an error."""

    code = "rate_limiter_unavailable"

    def __init__(self) -> None:
        super().__init__("The rate limiter's store cannot be used right now.")


@dataclass(frozen=True)
class Add:
    """Add `by` to the count at `key` (0 when absent), which lives `ttl` s from its first add; answers the new count."""

    key: str
    by: int = 1
    ttl: int = WINDOW_TTL_SECONDS


@dataclass(frozen=True)
class Get:
    """The count at `key`; 0 when absent."""

    key: str


@dataclass(frozen=True)
class Mark:
    """Raise the marker at `key` to `value` (never lower it); it lives `ttl` s from this write. Answers None."""

    key: str
    value: float
    ttl: int


@dataclass(frozen=True)
class Seen:
    """The marker at `key`; 0 when absent."""

    key: str


Op = Add | Get | Mark | Seen


def window_key(bucket: str, window: int) -> str:
    """A per-minute count's key: `cgpt:rl:chat:user:<id>:1764108600` (the window's start)."""
    return f"{KEY_PREFIX}rl:{bucket}:{window}"


class Counters(Protocol):
    def run(self, ops: Sequence[Op]) -> list[float | None]:
        """Run `ops` in order, in one round trip; each one's answer."""
        ...

    def hit(self, bucket: str, window: int) -> int:
        """Count one request in `bucket`'s `window`; the count including it."""
        ...


def counters(current: Settings) -> Counters:
    """The configured backend; on Vercel only Upstash, since an instance's disk is its own."""
    url, token = current.upstash_redis_rest_url, current.upstash_redis_rest_token
    if url and token:
        from lib.counters.upstash import UpstashCounters

        timeout, breaker = current.upstash_redis_timeout, upstash_breaker(current)
        return kept(
            ("counters", "upstash", url, token, timeout),
            lambda: UpstashCounters(url, token, timeout, breaker),
        )
    if current.on_vercel:
        raise ServiceUnavailable(
            "Rate limiting is not configured: on Vercel it needs Upstash Redis "
            "(UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, or the KV_REST_API_URL and "
            "KV_REST_API_TOKEN of Vercel's Upstash integration).",
            code="rate_limiter_not_configured",
        )
    from lib.counters.sqlite import SqliteCounters

    # Keyed by the settings' own directory: a path built per request would be hashed anew each time.
    return kept(
        ("counters", "sqlite", current.data_dir),
        lambda: SqliteCounters(current.data_dir / "limits.sqlite3"),
    )


def upstash_breaker(current: Settings) -> Breaker:
    """The process's one breaker for its Upstash database, shared by the counters and the usage records.

    One outage, one view of it: failures of either open it, and while it is open
    neither waits on Upstash.
    """
    from lib.breaker import Breaker

    return kept(
        ("breaker", "upstash", current.upstash_redis_rest_url),
        lambda: Breaker(current.breaker_failures, current.breaker_cooldown),
    )
