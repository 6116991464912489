"""What a deployment can say about itself without a key and without a secret.

For GET /api/health and the smoke check (`python -m lib.check`): which backends the
functions use, which variables they miss, and each store's round-trip time measured
here, inside the function, so a store in another region than the functions shows at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lib.counters import counters
from lib.errors import GatewayError
from lib.keys.store import TOUCH_AFTER_SECONDS, key_store
from lib.settings import Settings, settings

# A key hash no key has (not 64 hex digits): verifying it is one store round trip that finds nothing.
PROBE_HASH = "health-probe"
PROBE_BUCKET = "health:probe"  # counted like a caller, in a bucket no caller has


def report() -> dict[str, Any]:
    """The whole report; each store is opened (if need be) and then timed over one call."""
    current = settings()
    embedded = None if current.on_vercel else "sqlite"  # on Vercel nothing stands in for a missing store
    key_backend = "supabase" if current.supabase_url and current.supabase_service_role_key else embedded
    counter_backend = "upstash" if current.upstash_redis_rest_url else embedded
    window = int(time.time() // 60) * 60
    stores = {
        "keyStore": _probe(
            key_backend, key_store, lambda store: store.verify(PROBE_HASH, TOUCH_AFTER_SECONDS)
        ),
        "counters": _probe(
            counter_backend, lambda: counters(current), lambda store: store.hit(PROBE_BUCKET, window)
        ),
    }
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
            names.append("SUPABASE_SERVICE_ROLE_KEY")
        if current.upstash_redis_rest_url is None:
            names += ["UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"]
    return names


def _probe(
    backend: str | None, open_store: Callable[[], Any], call: Callable[[Any], object]
) -> dict[str, Any]:
    """Whether the store answers, and how long one call took (its opening not included)."""
    try:
        store = open_store()
        started = time.perf_counter()
        call(store)
    except GatewayError as error:
        return {"backend": backend, "reachable": False, "roundTripMs": None, "error": error.code}
    elapsed = (time.perf_counter() - started) * 1000
    return {"backend": backend, "reachable": True, "roundTripMs": round(elapsed, 1), "error": None}
