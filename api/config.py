"""GET /api/config: what the dashboard and playground pages need, nothing secret, no key.

`{"baseUrl", "auth": {"mode", "supabase", "methods"}, "limits", "maxKeys"}`:
`mode` is `supabase` (sign in with Supabase Auth at `supabase.url` with its anon
key, by `methods`), `local` (the embedded default: one-time links from the
terminal, redeemed at POST /api/session) or `none` (accounts not configured).
"""

from lib.public_config import public_config
from lib.web import Request, Response, endpoint, json_response


def get_config(request: Request) -> Response:
    # `baseUrl` is the host this caller reached: a browser may keep the answer, a shared cache may not.
    return json_response(public_config(request), headers={"Cache-Control": "private, max-age=60"})


app = endpoint(GET=get_config)
