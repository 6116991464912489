"""MapleAI (api.mapleai.de): an OpenAI-style API behind CloudGPT's own Bearer key.

Chat goes through `POST /v1/chat/completions`, answered exactly as every other
chat provider's. Unlike Pollinations, MapleAI has no anonymous tier, so without
`MAPLEAI_API_KEY` its models are unavailable (a 503 that a fallback may answer).
"""

from __future__ import annotations

from lib.catalog import Model
from lib.errors import ServiceUnavailable
from lib.providers.openai_compatible import chat_completion
from lib.schemas import ChatRequest
from lib.settings import settings
from lib.upstream import Deadline
from lib.web import Response

NAME = "mapleai"


def _account() -> tuple[str, str]:
    """MapleAI's base URL and CloudGPT's key for it, or a 503 when no key is configured."""
    current = settings()
    if not current.mapleai_api_key:
        raise ServiceUnavailable(
            "MapleAI models are not available on this gateway (MAPLEAI_API_KEY is not set).",
            code="provider_not_configured",
        )
    return current.mapleai_base_url, current.mapleai_api_key


# Chat


def chat(model: Model, body: ChatRequest, deadline: Deadline) -> Response:
    base_url, api_key = _account()
    return chat_completion(NAME, base_url, api_key, model, body, deadline)
