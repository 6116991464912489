"""GET /api/health: what the deployment sees of itself, for the smoke check and for monitors.

No key is needed and nothing secret is answered: which backends are configured, which
variables are missing, whether each provider key is set (yes or no), and each store's
round-trip time as this function measured it in its last probe (a read, at most one
every few seconds per instance). 200 when the function runs, `status` saying `ok` or
`degraded`; a 429 past 30 calls a minute from one address.
"""

from lib.health import report
from lib.identity import address_bucket, client_ip
from lib.web import Request, Response, endpoint, json_response


def get_health(request: Request) -> Response:
    return json_response(report(address_bucket(client_ip(request))))


app = endpoint(GET=get_health)
