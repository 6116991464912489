"""DELETE /api/keys/:id: revoke one of the caller's keys.

Needs the same credentials as GET /api/keys. Answers `{"deleted": true, "id"}`; an
unknown id and another user's id get the same 404. On this instance the key stops
working at once, on every other within CLOUDGPT_KEY_CACHE_SECONDS (30 by default).
"""

from lib import keys
from lib.errors import NotFound
from lib.identity import account_holder
from lib.web import Request, Response, endpoint, json_response


def delete_key(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    key_id = request.query("id")  # Vercel passes the path segment as query `id`
    if not keys.revoke(user, key_id):
        raise NotFound("No API key with this id.", code="key_not_found", param="id")
    return json_response({"deleted": True, "id": key_id})


app = endpoint(DELETE=delete_key)
