"""The model listings: one modality in the spec's shape, every model in OpenAI's."""

from __future__ import annotations

from lib import catalog
from lib.errors import NotFound
from lib.web import Handler, Request, Response, json_response

# The catalog changes only with a deployment.
_CACHED = {"Cache-Control": "public, max-age=300"}


def listing(modality: str) -> Handler:
    """A handler answering `{"object": "list", "data": [...]}` for one modality."""
    body = {"object": "list", "data": [model.public() for model in catalog.models(modality)]}

    def list_models(request: Request) -> Response:
        if request.query("id"):  # GET /v1/models/chat asks for a model of that id: there is none
            raise _no_such_model(request.query("id"))
        return json_response(body, headers=_CACHED)

    return list_models


_EVERY_MODEL = {"object": "list", "data": [model.openai() for model in catalog.every_model()]}


def list_every_model(request: Request) -> Response:
    """`{"object": "list", "data": [...]}` of every model, each in OpenAI's `model` shape."""
    return json_response(_EVERY_MODEL, headers=_CACHED)


def retrieve_model(request: Request) -> Response:
    """One model in OpenAI's `model` shape, or a 404 naming it."""
    model_id = request.query("id")  # Vercel passes the path segment as query `id`
    model = catalog.find(model_id)
    if model is None:
        raise _no_such_model(model_id)
    return json_response(model.openai(), headers=_CACHED)


def _no_such_model(model_id: str) -> NotFound:
    return NotFound(f"No model {model_id!r}; GET /v1/models lists them.", code="model_not_found", param="id")
