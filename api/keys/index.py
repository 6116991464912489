"""GET /api/keys: the caller's API keys; POST /api/keys: a new one.

Both need `Authorization: Bearer` with a Supabase Auth access token, or one of the
user's own API keys. POST takes `{"name"}` (optional, 1 to 100 characters) and
answers 201 `{"id", "key", "name", "created"}`: the only time the key is shown.
GET answers `{"data": [{"id", "name", "prefix", "created", "lastUsed"}]}`, newest first.
"""

from lib import keys
from lib.identity import account_holder
from lib.validation import parse_body
from lib.web import Request, Response, endpoint, json_response


def list_keys(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    return json_response({"data": keys.list_keys(user)})


def create_key(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    body = parse_body(request, "CreateKeyRequest", optional=True)  # 400 naming the field
    return json_response(keys.create(user, body.name), 201)  # 400 past 25 keys


app = endpoint(GET=list_keys, POST=create_key)
