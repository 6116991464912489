"""Provider adapters: each maps CloudGPT's requests to one provider's API and back.

Adding a provider is one module here plus its models in the catalog. An adapter
offers `chat`, `image` and `video` for the modalities it serves.
"""

from __future__ import annotations

from types import ModuleType

from lib.catalog import Model
from lib.errors import ServiceUnavailable
from lib.providers import mapleai, pollinations
from lib.schemas import ChatRequest, ImageRequest, VideoRequest
from lib.web import Response

ADAPTERS: dict[str, ModuleType] = {"pollinations": pollinations, "mapleai": mapleai}


def chat(model: Model, body: ChatRequest) -> Response:
    """Answer a chat request with the provider behind `model`."""
    return _answer("chat", model, body)


def image(model: Model, body: ImageRequest) -> Response:
    """Answer an image request with the provider behind `model`: the image's bytes."""
    return _answer("image", model, body)


def video(model: Model, body: VideoRequest) -> Response:
    """Answer a video request with the provider behind `model`: the clip's bytes."""
    return _answer("video", model, body)


def _answer(modality: str, model: Model, body: object) -> Response:
    handler = getattr(ADAPTERS.get(model.provider), modality, None)
    if handler is None:
        raise ServiceUnavailable(
            f"Provider {model.provider} is not available on this gateway.",
            code="provider_unavailable",
        )
    response = handler(model, body)
    response.headers["X-CloudGPT-Provider"] = model.provider
    return response
