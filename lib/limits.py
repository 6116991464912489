"""Per-minute rate limits: one fixed window per (caller, modality, UTC minute).

The counters live in Upstash Redis when it is configured, else in SQLite on local
disk (`lib/counters`); both count atomically, so the limit admits exactly itself
under any concurrency. When the counters cannot be used, RATE_LIMIT_FAILURE_MODE
decides: `open` (the default) serves the request unchecked and says so in
`X-RateLimit-Status: unchecked`, `closed` refuses it with a 503.

A bucket found over its limit is remembered by this process until its window
ends: the flood that follows is refused from memory, without a store call (as
Upstash's own rate-limit library does with its ephemeral cache). The account
routes (/api/keys, /api/usage) have a budget per user (`enforce_account`), and
keys the store refused are counted per client address before it is asked again
(`check_failed_auth`, `record_failed_auth`), so made-up keys cost it little.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.counters import CountersUnavailable, counters
from lib.errors import RateLimited
from lib.settings import Settings, settings

if TYPE_CHECKING:
    from lib.identity import Caller
    from lib.web import Request

WINDOW_SECONDS = 60
_SPENT_ENTRIES = 10_000
log = logging.getLogger("cloudgpt")

_spent: dict[str, int] = {}  # counter bucket -> when its window ends (Unix s): over its limit until then
_spent_lock = threading.Lock()


@dataclass(frozen=True)
class Decision:
    """The outcome of counting one request against its window."""

    limit: int
    count: int | None  # None: the counters could not be used and the request was not counted
    reset: int  # Unix seconds at which the window ends
    now: float

    @property
    def allowed(self) -> bool:
        return self.count is None or self.count <= self.limit

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Reset": str(self.reset)}
        if self.count is None:
            headers["X-RateLimit-Status"] = "unchecked"
        else:
            headers["X-RateLimit-Remaining"] = str(max(0, self.limit - self.count))
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - self.now)))
        return headers


def enforce(caller: Caller, modality: str) -> dict[str, str]:
    """Count this request; its rate-limit headers, or a 429 once the window is spent."""
    limits = settings().limits[modality]
    limit = limits.authenticated if caller.authenticated else limits.anonymous
    return _enforce(f"{modality}:{caller.bucket}", limit, f"{modality} requests")


def enforce_account(request: Request, user: str) -> None:
    """Count a call to an account route (keys, usage) against the user's own budget; 429 past it."""
    limit = settings().account_limit
    request.response_headers.update(_enforce(f"account:user:{user}", limit, "account requests"))


def check_failed_auth(address: str) -> None:
    """Before the key store is asked about a key: a 429 once this address had too many refused."""
    current = settings()
    bucket, now = f"auth_failures:{address}", time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    if not _is_spent(bucket, now):
        try:
            failures = counters(current).peek(bucket, window)
        except CountersUnavailable as error:
            _unavailable(current, "key check", error)
            return
        if failures < current.failed_auth_limit:
            return
        _remember_spent(bucket, window + WINDOW_SECONDS)
    decision = Decision(
        current.failed_auth_limit, current.failed_auth_limit + 1, window + WINDOW_SECONDS, now
    )
    raise RateLimited(
        f"Too many invalid API keys from this address; retry after {decision.headers()['Retry-After']} s.",
        code="too_many_failed_authentications",
        headers=decision.headers(),
    )


def record_failed_auth(address: str) -> None:
    """Count a key the store refused against its sender's address."""
    current = settings()
    bucket, now = f"auth_failures:{address}", time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    try:
        failures = counters(current).hit(bucket, window)
    except CountersUnavailable as error:
        log.warning("refused key not counted: rate-limit counters unavailable (%r)", error.__cause__)
        return
    if failures >= current.failed_auth_limit:
        _remember_spent(bucket, window + WINDOW_SECONDS)


def _enforce(bucket: str, limit: int, what: str) -> dict[str, str]:
    current = settings()
    now = time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    if _is_spent(bucket, now):
        count: int | None = limit + 1
    else:
        try:
            count = counters(current).hit(bucket, window)
        except CountersUnavailable as error:
            _unavailable(current, what, error)
            count = None
    decision = Decision(limit=limit, count=count, reset=window + WINDOW_SECONDS, now=now)
    headers = decision.headers()
    if not decision.allowed:
        _remember_spent(bucket, decision.reset)
        raise RateLimited(
            f"Rate limit of {limit} {what} per minute reached; retry after {headers['Retry-After']} s.",
            headers=headers,
        )
    return headers


def _unavailable(current: Settings, what: str, error: CountersUnavailable) -> None:
    """RATE_LIMIT_FAILURE_MODE: `closed` raises the 503, `open` lets the request through unchecked."""
    closed = current.rate_limit_failure_mode == "closed"
    outcome = "refused" if closed else "served unchecked"
    log.warning("%s %s: rate-limit counters unavailable (%r)", what, outcome, error.__cause__)
    if closed:
        raise error


def _is_spent(bucket: str, now: float) -> bool:
    return _spent.get(bucket, 0) > now


def _remember_spent(bucket: str, until: int) -> None:
    with _spent_lock:
        if len(_spent) >= _SPENT_ENTRIES:  # bounded: drop ended windows, or everything if none has
            now = time.time()
            for key in [key for key, end in _spent.items() if end <= now] or list(_spent):
                del _spent[key]
        _spent[bucket] = until
