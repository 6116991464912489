"""What a deployment can say about itself without a key and without a secret.

For GET /api/health and the smoke check (`python -m lib.check`): which backends the
functions use, which variables they miss, and each store's round-trip time measured
here, inside the function, so a store in another region than the functions shows at once.

The route needs no key, so anyone may call it: each store is probed with a read
(never a write), at most once every PROBE_SECONDS per instance whatever the traffic,
and each client address may ask LIMIT_PER_MINUTE times a minute per instance. Both
are kept in memory: counting the callers in the shared counters would itself cost
a store command per call, which is what the limit is for.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from lib.counters import Get, counters, window_key
from lib.errors import GatewayError, RateLimited
from lib.keys.store import key_store
from lib.settings import Settings, settings

PROBE_SECONDS = 5.0
LIMIT_PER_MINUTE = 30
# A user id no key has: listing its keys is one read that finds nothing.
PROBE_USER = "00000000-0000-0000-0000-000000000000"
PROBE_BUCKET = "health:probe"  # read like a caller's count, in a bucket no caller has
_ADDRESSES = 10_000  # addresses remembered per window at most

_probe_lock = threading.Lock()
_probed: tuple[float, dict[str, Any]] | None = None  # (when, the stores' part of the report)
_callers_lock = threading.Lock()
_callers: dict[str, int] = {}  # address -> calls in the current window
_callers_window = 0


def report(address: str) -> dict[str, Any]:
    """The whole report for a caller at `address`; a 429 past its budget this minute."""
    _admit(address)
    current = settings()
    stores, checked = _stores(current)
    return {
        "status": "ok" if all(store["reachable"] for store in stores.values()) else "degraded",
        "runtime": "vercel" if current.on_vercel else "local",
        "region": current.region,
        "missing": missing(current),
        "providers": {
            "pollinations": {"apiKey": current.pollinations_api_key is not None},
            "mapleai": {"apiKey": current.mapleai_api_key is not None},
        },
        "accountTokens": {
            "jwtSecret": current.supabase_jwt_secret is not None,
            "jwks": current.supabase_url is not None,
        },
        "checkedAt": checked,
        **stores,
    }


def missing(current: Settings) -> list[str]:
    """The variables whose absence turns something off, named as the operator sets them."""
    names = []
    if current.pollinations_api_key is None:
        names.append("POLLINATIONS_API_KEY")
    if current.mapleai_api_key is None:
        names.append("MAPLEAI_API_KEY")
    if current.on_vercel:  # locally the embedded stores stand in for these
        if current.supabase_url is None:
            names.append("SUPABASE_URL")
        if current.supabase_service_role_key is None:
            names.append("SUPABASE_SECRET_KEY")  # or its legacy name, SUPABASE_SERVICE_ROLE_KEY
    if current.supabase_url is not None and current.supabase_anon_key is None:
        names.append("SUPABASE_PUBLISHABLE_KEY")  # (or SUPABASE_ANON_KEY) else the pages offer no sign-in
    if current.on_vercel and current.upstash_redis_rest_url is None:
        names += ["UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"]
    return names


def _admit(address: str) -> None:
    """Count a call from `address` in this minute's window (per instance); a 429 past the limit."""
    global _callers_window
    now = time.time()
    window = int(now // 60) * 60
    with _callers_lock:
        if window != _callers_window or len(_callers) >= _ADDRESSES:
            _callers.clear()
            _callers_window = window
        calls = _callers[address] = _callers.get(address, 0) + 1
    if calls > LIMIT_PER_MINUTE:
        retry = str(max(1, math.ceil(window + 60 - now)))
        raise RateLimited(
            f"GET /api/health answers {LIMIT_PER_MINUTE} calls a minute per address; retry after {retry} s.",
            headers={"Retry-After": retry},
        )


def _stores(current: Settings) -> tuple[dict[str, Any], int]:
    """Each store's probe, made again only when the last one is PROBE_SECONDS old; and when it was made."""
    global _probed
    with _probe_lock:  # one probe at a time: callers arriving meanwhile get its answer
        if _probed is None or time.monotonic() - _probed[0] >= PROBE_SECONDS:
            _probed = (time.monotonic(), _probe_all(current))
        return _probed[1]["stores"], _probed[1]["checkedAt"]


def _probe_all(current: Settings) -> dict[str, Any]:
    embedded = None if current.on_vercel else "sqlite"  # on Vercel nothing stands in for a missing store
    key_backend = "supabase" if current.supabase_url and current.supabase_service_role_key else embedded
    counter_backend = "upstash" if current.upstash_redis_rest_url else embedded
    window = int(time.time() // 60) * 60
    stores = {
        "keyStore": _probe(key_backend, key_store, lambda store: store.list(PROBE_USER)),
        "counters": _probe(
            counter_backend,
            lambda: counters(current),
            lambda store: store.run([Get(window_key(PROBE_BUCKET, window))]),
        ),
    }
    return {"stores": stores, "checkedAt": int(time.time())}


def _probe(
    backend: str | None, open_store: Callable[[], Any], call: Callable[[Any], object]
) -> dict[str, Any]:
    """Whether the store answers, and how long one call took (its opening not included)."""
    try:
        store = open_store()
        started = time.perf_counter()
        call(store)
    except GatewayError as error:
        return {
            "backend": backend,
            "reachable": False,
            "roundTripMs": None,
            "error": error.code,
            "problem": getattr(error, "problem", None),
        }
    elapsed = (time.perf_counter() - started) * 1000
    return {
        "backend": backend,
        "reachable": True,
        "roundTripMs": round(elapsed, 1),
        "error": None,
        "problem": None,
    }
