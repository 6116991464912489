"""Pollinations (gen.pollinations.ai): chat through its OpenAI-compatible endpoint."""

from __future__ import annotations

from lib.catalog import Model
from lib.providers.openai_compatible import chat_completion
from lib.schemas import ChatRequest
from lib.settings import settings
from lib.upstream import Deadline
from lib.web import Response

NAME = "pollinations"


def chat(model: Model, body: ChatRequest, deadline: Deadline) -> Response:
    current = settings()
    return chat_completion(
        NAME, current.pollinations_base_url, current.pollinations_api_key, model, body, deadline
    )
