"""PATCH /api/keys/:id: change one of the caller's keys; DELETE /api/keys/:id: revoke it.

Both need an access token (an account session), not an API key (403), and count
against the user's account budget (429 past it); an unknown id and another
user's id get the same 404. PATCH takes any of `name`, `expires`, `disabled`,
`models`, `limits`, `quota` (null clears a control) and answers the key as
GET /api/keys lists it. DELETE answers `{"deleted": true, "id"}`; the key's
usage keeps its name (`revokedKeys` in GET /api/usage). Either holds on every
instance within a second: each request with the key reads its change marker in
the same round trip as its rate-limit count.
"""

from lib import keys, usage
from lib.errors import NotFound
from lib.identity import account_session
from lib.limits import enforce_account
from lib.validation import parse_body
from lib.web import Request, Response, endpoint, json_response


def update_key(request: Request) -> Response:
    user = account_session(request).user  # 401 without a valid access token, 403 for a key
    enforce_account(request, user)  # 429 past the minute's account budget
    body = parse_body(request, "UpdateKeyRequest")  # 400 naming the field
    changes = body.changes()
    keys.checked_controls(changes)  # 400 naming a model, limit or expiry out of bounds
    key = keys.update(user, request.query("id"), changes)  # Vercel passes the path segment as query `id`
    if key is None:
        raise _not_found()
    return json_response(key)


def delete_key(request: Request) -> Response:
    user = account_session(request).user  # 401 without a valid access token, 403 for a key
    enforce_account(request, user)  # 429 past the minute's account budget
    key_id = request.query("id")  # Vercel passes the path segment as query `id`
    names = {key["id"]: key["name"] for key in keys.list_keys(user)}
    if not keys.revoke(user, key_id):
        raise _not_found()
    usage.revoked(user, key_id, str(names.get(key_id, key_id)))  # its usage keeps its name
    return json_response({"deleted": True, "id": key_id})


def _not_found() -> NotFound:
    return NotFound("No API key with this id.", code="key_not_found", param="id")


app = endpoint(PATCH=update_key, DELETE=delete_key)
