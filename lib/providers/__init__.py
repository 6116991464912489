"""Provider adapters: each maps CloudGPT's requests to one provider's API and back.

Adding a provider is one module here plus its models in the catalog. An adapter
offers `chat`, `image` and `video` for the modalities it serves, each taking the
model, the validated request and the call's `Deadline`. A model's catalog
fallbacks are tried in turn when its provider fails before answering;
`X-CloudGPT-Provider` says which provider answered, or which one failed.

An adapter is imported when one of its models is first asked for, so a cold start
pays only for the providers its requests use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from lib.catalog import Model, with_fallbacks
from lib.errors import GatewayError, ServiceUnavailable
from lib.upstream import Deadline

if TYPE_CHECKING:
    from lib.schemas import ChatRequest, ImageRequest, VideoRequest
    from lib.web import Response

ADAPTERS: dict[str, str] = {"pollinations": "lib.providers.pollinations", "mapleai": "lib.providers.mapleai"}

# Failures another provider may not share: rate limits, outages, timeouts, our account
# there. A 400 is the request's own fault and would fail anywhere.
_FALLS_BACK = frozenset({429, 502, 503, 504})


def chat(model: Model, body: ChatRequest) -> Response:
    """Answer a chat request with the provider behind `model`, or its fallbacks'."""
    return _answer("chat", model, body)


def image(model: Model, body: ImageRequest) -> Response:
    """Answer an image request with the provider behind `model`: the image's bytes."""
    return _answer("image", model, body)


def video(model: Model, body: VideoRequest) -> Response:
    """Answer a video request with the provider behind `model`: the clip's bytes."""
    return _answer("video", model, body)


def _answer(modality: str, model: Model, body: object) -> Response:
    deadline = Deadline.start()  # one time budget for every provider tried
    failures: list[tuple[Model, GatewayError]] = []
    for candidate in with_fallbacks(model):
        try:
            response = _handler(modality, candidate.provider)(candidate, body, deadline)
        except GatewayError as error:
            error.headers.setdefault("X-CloudGPT-Provider", candidate.provider)
            if error.status not in _FALLS_BACK:
                raise
            failures.append((candidate, error))
        else:
            response.headers["X-CloudGPT-Provider"] = candidate.provider
            return response
    raise _every_one_failed(failures)


def _every_one_failed(failures: list[tuple[Model, GatewayError]]) -> GatewayError:
    """The failure of the model asked for (its status, code, headers), its message naming each fallback tried."""
    first = failures[0][1]
    if len(failures) > 1:
        tried = "; ".join(f"{model.id} ({model.provider}): {error.message}" for model, error in failures[1:])
        first.message = f"{first.message} Also tried, and failed: {tried}"
    return first


@cache  # looked up once per process: a request finds its adapter's function without an import
def _handler(modality: str, provider: str) -> Callable[[Model, Any, Deadline], Response]:
    adapter = ADAPTERS.get(provider)
    handler = getattr(import_module(adapter), modality, None) if adapter else None
    if handler is None:
        raise ServiceUnavailable(
            f"Provider {provider} is not available on this gateway.",
            code="provider_unavailable",
        )
    return handler
