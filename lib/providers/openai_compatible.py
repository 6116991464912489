"""Chat with any provider that speaks OpenAI's `POST /v1/chat/completions`."""

from __future__ import annotations

from lib.catalog import Model
from lib.errors import UpstreamError
from lib.schemas import ChatRequest
from lib.sse import relay
from lib.upstream import Deadline, open_response, parse_json, read_body
from lib.usage import tokens
from lib.web import Response, event_stream, json_response


def chat_completion(
    provider: str, base_url: str, api_key: str | None, model: Model, body: ChatRequest, deadline: Deadline
) -> Response:
    """The provider's completion as CloudGPT answers it: JSON, or SSE chunks as they come.

    A stream always asks the provider for its usage chunk (to record the tokens); the
    caller gets that chunk only when they asked for it too.
    """
    upstream_body = body.upstream_body(model.upstream)
    if body.stream:
        upstream_body["stream_options"] = {**upstream_body.get("stream_options", {}), "include_usage": True}
    response = open_response(
        provider,
        "POST",
        f"{base_url}/v1/chat/completions",
        api_key=api_key,
        json_body=upstream_body,
        deadline=deadline,
    )
    if body.stream:
        used: dict[str, int] = {}
        wants_usage = bool(body.stream_options and body.stream_options.include_usage)
        return event_stream(relay(provider, response, deadline, used, forward_usage=wants_usage), used=used)
    raw = read_body(provider, response, deadline)
    completion = parse_json(raw)
    if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
        raise UpstreamError(
            f"{provider} answered with something that is not a chat completion.", code="upstream_malformed"
        )
    if raw.startswith(b"{"):  # UTF-8 (JSON in another encoding starts otherwise): passed on byte for byte
        answer = Response([raw], 200, {"Content-Type": "application/json", "Content-Length": str(len(raw))})
    else:
        answer = json_response(completion)
    answer.used = tokens(completion.get("usage"))
    return answer
