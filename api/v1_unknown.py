"""Any /v1 path CloudGPT does not serve (/v1/embeddings, /v1/files, ...): a 404 in the envelope.

The last rewrite in vercel.json sends what no /v1 route took here, so an OpenAI
SDK calling an endpoint CloudGPT lacks raises its own `NotFoundError`, told which
endpoints there are.
"""

from lib.errors import NotFound
from lib.web import Request, Response, endpoint

OFFERED = "/v1/chat/completions, /v1/models, /v1/models/{id} and /v1/images/generations"


def no_such_endpoint(request: Request) -> Response:
    raise NotFound(
        f"CloudGPT has no {request.path}; its OpenAI-compatible endpoints are {OFFERED}.",
        code="route_not_found",
    )


app = endpoint(**dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), no_such_endpoint))
