"""GET /api/keys: the caller's API keys; POST /api/keys: a new one.

GET needs `Authorization: Bearer` with a Supabase Auth access token or one of the
user's own API keys; POST needs an access token (an account session): a key
cannot mint keys, and an anonymous sign-in gets none (403). Both count against
the user's account budget (429 past it). POST takes `{"name"}` (optional, 1 to
100 characters) and the key's controls (`expires`, `disabled`, `models`,
`limits`, `quota`, each optional) and answers 201 `{"id", "key", "name",
"created", ...controls}`: the only time the key is shown. GET answers `{"data":
[{"id", "name", "prefix", "created", "lastUsed", ...controls, "quotaUsed"}]}`,
newest first (`quotaUsed` only for a key with a quota).
"""

from lib import keys
from lib.identity import account_holder, account_session
from lib.limits import enforce_account
from lib.validation import parse_body
from lib.web import Request, Response, endpoint, json_response


def list_keys(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    enforce_account(request, user)  # 429 past the minute's account budget
    return json_response({"data": keys.list_keys(user)})


def create_key(request: Request) -> Response:
    user = account_session(request).user  # 401 without a valid access token, 403 for a key
    enforce_account(request, user)  # 429 past the minute's account budget
    body = parse_body(request, "CreateKeyRequest", optional=True)  # 400 naming the field
    controls = keys.checked_controls(body.controls())  # 400 naming a model, limit or expiry out of bounds
    return json_response(keys.create(user, body.name, controls), 201)  # 400 past 25 keys


app = endpoint(GET=list_keys, POST=create_key)
