"""Provider adapters: each maps CloudGPT's requests to one provider's API and back.

Adding a provider is one module here plus its models in the catalog.
"""

from __future__ import annotations

from types import ModuleType

from lib.catalog import Model
from lib.errors import ServiceUnavailable
from lib.providers import pollinations
from lib.schemas import ChatRequest
from lib.web import Response

ADAPTERS: dict[str, ModuleType] = {"pollinations": pollinations}


def chat(model: Model, body: ChatRequest) -> Response:
    """Answer a chat request with the provider behind `model`."""
    adapter = ADAPTERS.get(model.provider)
    if adapter is None:
        raise ServiceUnavailable(
            f"Provider {model.provider} is not available on this gateway.",
            code="provider_unavailable",
        )
    response = adapter.chat(model, body)
    response.headers["X-CloudGPT-Provider"] = model.provider
    return response
