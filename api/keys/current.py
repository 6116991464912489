"""GET /api/keys/current: the settings of the key the request is made with.

Needs `Authorization: Bearer <api key>` (anything else is a 401 `invalid_api_key`)
and counts against the user's account budget (429 past it). Answers the key as
GET /api/keys lists it, with `quotaUsed: {"requests", "tokens", "resets"}` when
it has a quota; never the key itself.
"""

from lib import keys
from lib.identity import api_key_holder
from lib.limits import enforce_account
from lib.web import Request, Response, endpoint, json_response


def current_key(request: Request) -> Response:
    caller = api_key_holder(request)  # 401 for anything but a usable key
    enforce_account(request, caller.id)  # 429 past the minute's account budget; a changed key re-read
    return json_response(keys.current(caller.key))


app = endpoint(GET=current_key)
