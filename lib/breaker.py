"""A circuit breaker per store and process: after a few failures in a row, stop asking for a while.

While a store is down, every request would otherwise wait out its timeout before
the fallback applies. Once `failures` calls in a row have failed, the breaker is
open: calls are refused at once for a cool-down, jittered so that instances which
saw the same outage do not all come back in step. After it, calls go through
again; the first success closes the breaker, a failure opens it for another
cool-down. State is per process (a warm instance), like the key cache; no thread.
"""

from __future__ import annotations

import random
import threading
import time


class Breaker:
    def __init__(self, failures: int, cooldown: float) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allows(self) -> bool:
        """Whether a call may be made now (False while the breaker is open)."""
        return time.monotonic() >= self._open_until

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self._threshold:
                # 50-100 % of the cool-down: instances that failed together retry apart.
                pause = self._cooldown * random.uniform(0.5, 1.0)
                self._open_until = time.monotonic() + pause
