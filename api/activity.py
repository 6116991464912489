"""GET /api/activity: the caller's requests one by one, newest first, to find the one that failed or was slow.

Needs the same credentials as GET /api/usage (a Supabase Auth access token, or one
of the user's own API keys) and counts against the user's account budget (429 past
it). An entry is written once a request of one of the user's keys to a generation
route has been answered: `{"id" (its X-Request-Id), "time" (Unix ms), "keyId",
"model", "modality", "provider" (the one that answered), "status", "error" (its
code, or null), "latencyMs", "firstByteMs", "promptTokens", "completionTokens",
"images", "videoSeconds", "stream", "fallback"}`; never a prompt or a completion.
Entries are kept at least 7 days and at least the user's last 1,000.
Query: `limit` (1 to 200, default 50), `before` (an entry's id: the page after it),
`keyId`, `model`, `status` (`ok` or `error`), `format` (`csv`: every entry kept
that matches, unless `limit` says fewer). Answer: `{"object": "list", "data": [...],
"hasMore"}`.
"""

from lib import usage
from lib.identity import account_holder
from lib.limits import enforce_account
from lib.usage.query import activity_query
from lib.web import Request, Response, csv_response, endpoint, json_response


def list_activity(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    enforce_account(request, user)  # 429 past the minute's account budget
    query, output = activity_query(request)  # 400 naming a bad or unknown parameter
    page = usage.activity(user, query)  # 503 when the store cannot be read
    if output == "csv":
        return csv_response(usage.ACTIVITY_COLUMNS, usage.activity_rows(page["data"]), "activity.csv")
    return json_response(page)


app = endpoint(GET=list_activity)
