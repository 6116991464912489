"""What a warm instance keeps between requests: stores and clients, opened once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_kept: dict[Hashable, Any] = {}
_lock = threading.RLock()  # re-entrant: a store opening may open what it shares (the Upstash client)


def kept(key: Hashable, open_it: Callable[[], T]) -> T:
    """The process's one `open_it()` for `key`, opened by the first request that needs it.

    Concurrent first requests must not open (and migrate) a store twice, so opening
    happens under a lock; once open, it is found without one.
    """
    found = _kept.get(key)
    if found is not None:
        return found
    with _lock:
        if key not in _kept:
            _kept[key] = open_it()
        return _kept[key]
