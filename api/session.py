"""POST /api/session: a local sign-in link's code, exchanged for an access token; DELETE: sign out.

POST only in the embedded default (`make dev` without Supabase, never on Vercel):
the body is `{"code"}` from the link the local server printed; the answer is
`{"accessToken", "expiresAt", "user": {"id", "email": null}}`, the token good for
/api/keys like a Supabase Auth one. A used, expired or unknown code is a 401
`invalid_code`. `DELETE` with `Authorization: Bearer <access token>` ends that
token's session: 204, and the token is refused from then on (a 401 `invalid_token`
locally, `session_ended` with Supabase tokens, whose sign-out supabase-js also
sends to Supabase Auth). Where no access token is accepted the route does not
exist (404).
"""

from lib import accounts, local_signin
from lib.errors import NotFound
from lib.identity import bearer_token
from lib.validation import parse_body
from lib.web import Request, Response, endpoint, json_response

_MISSING = "Signing out needs 'Authorization: Bearer <access token>'."


def _local_only(request: Request) -> None:
    if accounts.mode() != "local":
        raise NotFound(f"No route for {request.path}.", code="route_not_found")


def open_session(request: Request) -> Response:
    _local_only(request)
    body = parse_body(request, "SessionRequest")  # 400 naming the field
    return json_response(local_signin.redeem(body.code))  # 401 invalid_code


def end_session(request: Request) -> Response:
    if accounts.mode() != "local" and not accounts.supabase_tokens():
        raise NotFound(f"No route for {request.path}.", code="route_not_found")
    accounts.sign_out(bearer_token(request, _MISSING))  # 401 for a token that does not verify
    return Response([], 204)


app = endpoint(POST=open_session, DELETE=end_session)
