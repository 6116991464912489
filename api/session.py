"""POST /api/session: a local sign-in link's code, exchanged for an access token.

Only in the embedded default (`make dev` without Supabase, never on Vercel): the
body is `{"code"}` from the link the local server printed; the answer is
`{"accessToken", "expiresAt", "user": {"id", "email": null}}`, the token good for
/api/keys like a Supabase Auth one. A used, expired or unknown code is a 401
`invalid_code`; elsewhere the route does not exist (404).
"""

from lib import accounts, local_signin
from lib.errors import NotFound
from lib.validation import parse_body
from lib.web import Request, Response, endpoint, json_response


def open_session(request: Request) -> Response:
    if accounts.mode() != "local":
        raise NotFound(f"No route for {request.path}.", code="route_not_found")
    body = parse_body(request, "SessionRequest")  # 400 naming the field
    return json_response(local_signin.redeem(body.code))  # 401 invalid_code


app = endpoint(POST=open_session)
