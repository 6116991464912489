"""The `GET /api/models/<modality>` answer: the catalog's models as the API lists them."""

from __future__ import annotations

from lib import catalog
from lib.web import Handler, Request, Response, json_response


def listing(modality: str) -> Handler:
    """A handler answering `{"object": "list", "data": [...]}` for one modality."""
    body = {"object": "list", "data": [model.public() for model in catalog.models(modality)]}

    def list_models(request: Request) -> Response:
        return json_response(body, headers={"Cache-Control": "public, max-age=300"})

    return list_models
