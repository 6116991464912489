"""What the pages need to know, and nothing secret: GET /api/config.

The Supabase anon key is public by design (row-level security guards the data);
the service-role key, the JWT secret and every other credential stay out.
"""

from __future__ import annotations

from typing import Any

from lib import accounts
from lib.keys.store import MAX_KEYS_PER_USER
from lib.settings import settings
from lib.web import Request, origin


def public_config(request: Request) -> dict[str, Any]:
    current = settings()
    mode = accounts.mode()
    return {
        "baseUrl": f"{origin(request)}/v1",
        "auth": {
            "mode": mode,
            "supabase": (
                {"url": current.supabase_url, "anonKey": current.supabase_anon_key}
                if mode == "supabase"
                else None
            ),
            "methods": list(current.supabase_auth_methods) if mode == "supabase" else [],
        },
        "limits": {
            modality: {"anonymous": limit.anonymous, "authenticated": limit.authenticated}
            for modality, limit in current.limits.items()
        },
        "maxKeys": MAX_KEYS_PER_USER,
    }
