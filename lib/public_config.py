"""What the pages need to know, and nothing secret: GET /api/config.

The Supabase anon key is public by design (row-level security guards the data);
the service-role key, the JWT secret and every other credential stay out.
"""

from __future__ import annotations

import re
from typing import Any

from lib import accounts
from lib.keys.store import MAX_KEYS_PER_USER
from lib.settings import settings
from lib.web import Request

# A host as a URL carries it: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def origin(request: Request) -> str:
    """The origin the caller reached: the request's scheme and its `Host`.

    Only `Host` is read, never `X-Forwarded-Host`: Vercel sets `Host` to the domain the
    client asked for (it routes on it), but a function's environ cannot tell the
    platform's `x-forwarded-host` from a client's `X_Forwarded_Host`, which Vercel's
    runtime also writes to `HTTP_X_FORWARDED_HOST`. The scheme is the runtime's, from
    `x-forwarded-proto`, which the platform sets.
    """
    environ = request.environ
    host = request.header("Host") or ""
    if not _HOST.fullmatch(host):
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '80')}"
        if not _HOST.fullmatch(host):
            host = "localhost"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


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
