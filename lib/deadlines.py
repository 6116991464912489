"""Names a process remembers until a time: what it already knows it will refuse, without asking a store."""

from __future__ import annotations

import threading
import time


class Deadlines:
    """Name -> until when (Unix s), bounded to `size` names: past it, the ended ones go (or all, if none has)."""

    def __init__(self, size: int = 10_000) -> None:
        self._until: dict[str, float] = {}
        self._size = size
        self._lock = threading.Lock()

    def holds(self, name: str, now: float) -> bool:
        """Whether `name` is remembered past `now`."""
        return self._until.get(name, 0) > now

    def remember(self, name: str, until: float) -> None:
        with self._lock:
            if len(self._until) >= self._size:
                now = time.time()
                for key in [key for key, end in self._until.items() if end <= now] or list(self._until):
                    del self._until[key]
            self._until[name] = until
