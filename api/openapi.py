"""GET /api/openapi.json: the OpenAPI 3.1 document of every route, /api/* and /v1/*.

Built from the same pydantic models the routes validate requests with, so it
describes exactly what they accept: bodies, answers, errors, the bearer key and
the rate-limit headers.
"""

from lib.openapi import document
from lib.web import Request, Response, endpoint, json_response


def get_document(request: Request) -> Response:
    return json_response(document(), headers={"Cache-Control": "public, max-age=300"})


app = endpoint(GET=get_document)
