"""GET /api/usage: what the caller's keys used, per UTC day, key, model and modality.

Needs the same credentials as GET /api/keys (a Supabase Auth access token, or one
of the user's own API keys), counts against the user's account budget (429 past
it) and covers all of the user's keys, revoked ones too.
Query: `days` (1 to 90, default 30: today and the days before it), `keyId` (only
that key; another user's key id has no rows), `format` (`csv`: the rows for a
spreadsheet). Answer: `{"object": "usage", "from", "to", "data": [{"date", "keyId",
"model", "modality", "requests", "errors", "promptTokens", "completionTokens",
"images", "videoSeconds"}], "totals": {...}}`, newest day first, no empty rows.
"""

from lib import usage
from lib.identity import account_holder
from lib.limits import enforce_account
from lib.usage.query import usage_query
from lib.web import Request, Response, csv_response, endpoint, json_response


def get_usage(request: Request) -> Response:
    user = account_holder(request)  # 401 without a valid access token or key
    enforce_account(request, user)  # 429 past the minute's account budget
    days, key_id, output = usage_query(request)  # 400 naming a bad or unknown parameter
    report = usage.report(user, days, key_id)  # 503 when the store cannot be read
    if output == "csv":
        return csv_response(usage.USAGE_COLUMNS, report["data"], "usage.csv")
    return json_response(report)


app = endpoint(GET=get_usage)
