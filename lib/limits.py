"""Per-minute rate limits: one fixed window per (caller, modality, UTC minute).

The counters live in Upstash Redis when it is configured, else in SQLite on local
disk (`lib/counters`); both count atomically, so the limit admits exactly itself
under any concurrency. When the counters cannot be used, RATE_LIMIT_FAILURE_MODE
decides: `open` (the default) serves the request unchecked and says so in
`X-RateLimit-Status: unchecked`, `closed` refuses it with a 503.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from lib.counters import CountersUnavailable, counters
from lib.errors import RateLimited
from lib.identity import Caller
from lib.settings import settings

WINDOW_SECONDS = 60
log = logging.getLogger("cloudgpt")


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
    now = time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    current = settings()
    limits = current.limits[modality]
    limit = limits.authenticated if caller.authenticated else limits.anonymous
    try:
        count = counters(current).hit(f"{modality}:{caller.bucket}", window)
    except CountersUnavailable as error:
        outcome = "refused" if current.rate_limit_failure_mode == "closed" else "served unchecked"
        log.warning("%s request %s: rate-limit counters unavailable (%r)", modality, outcome, error.__cause__)
        if current.rate_limit_failure_mode == "closed":
            raise
        count = None
    decision = Decision(limit=limit, count=count, reset=window + WINDOW_SECONDS, now=now)
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(
            f"Rate limit of {limit} {modality} requests per minute reached; "
            f"retry after {headers['Retry-After']} s.",
            headers=headers,
        )
    return headers
