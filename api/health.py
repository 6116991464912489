"""GET /api/health: what the deployment sees of itself, for the smoke check and for monitors.

No key is needed and nothing secret is answered: which backends are configured, which
variables are missing, whether each provider key is set (yes or no), and each store's
round-trip time as this function measures it. Always 200 when the function runs;
`status` says `ok` or `degraded`.
"""

from lib.health import report
from lib.web import Request, Response, endpoint, json_response


def get_health(request: Request) -> Response:
    return json_response(report())


app = endpoint(GET=get_health)
