"""DELETE /api/keys/:id: revoke one of the caller's keys.

Needs an access token (an account session), not an API key (403), and counts
against the user's account budget (429 past it). Answers `{"deleted": true,
"id"}`; an unknown id and another user's id get the same 404. Its usage keeps its
name (`revokedKeys` in GET /api/usage). On this instance
the key stops working at once, on every other within CLOUDGPT_KEY_CACHE_SECONDS
(30 by default).
"""

from lib import keys, usage
from lib.errors import NotFound
from lib.identity import account_session
from lib.limits import enforce_account
from lib.web import Request, Response, endpoint, json_response


def delete_key(request: Request) -> Response:
    user = account_session(request).user  # 401 without a valid access token, 403 for a key
    enforce_account(request, user)  # 429 past the minute's account budget
    key_id = request.query("id")  # Vercel passes the path segment as query `id`
    names = {key["id"]: key["name"] for key in keys.list_keys(user)}
    if not keys.revoke(user, key_id):
        raise NotFound("No API key with this id.", code="key_not_found", param="id")
    usage.revoked(user, key_id, str(names.get(key_id, key_id)))  # its usage keeps its name
    return json_response({"deleted": True, "id": key_id})


app = endpoint(DELETE=delete_key)
