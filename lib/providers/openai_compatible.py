"""Chat with any provider that speaks OpenAI's `POST /v1/chat/completions`."""

from __future__ import annotations

import json

from lib.catalog import Model
from lib.errors import UpstreamError
from lib.schemas import ChatRequest
from lib.sse import relay
from lib.upstream import open_response, transport_errors
from lib.web import Response, event_stream, json_response


def chat_completion(
    provider: str, base_url: str, api_key: str | None, model: Model, body: ChatRequest
) -> Response:
    """The provider's completion as CloudGPT answers it: JSON, or SSE chunks as they come."""
    response = open_response(
        provider,
        "POST",
        f"{base_url}/v1/chat/completions",
        api_key=api_key,
        json_body=body.upstream_body(model.upstream),
    )
    if body.stream:
        return event_stream(relay(provider, response))
    try:
        with transport_errors(
            f"{provider} stopped sending its answer.",
            f"{provider} cut its answer off.",
            "upstream_unreachable",
        ):
            raw = response.read()
    finally:
        response.close()
    try:
        completion = json.loads(raw)
    except ValueError:
        completion = None
    if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
        raise UpstreamError(
            f"{provider} answered with something that is not a chat completion.", code="upstream_malformed"
        )
    return json_response(completion)
