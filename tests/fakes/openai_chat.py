"""OpenAI's chat completion shapes, as both providers' chat endpoints answer them.

A stream asked for `stream_options: {"include_usage": true}` has `"usage": null` in
every chunk and one more chunk before `data: [DONE]` with no choices and the usage,
as OpenAI documents it.
"""

from __future__ import annotations

import json
import time
from typing import Any

USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
STREAM_USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def last_content(body: dict[str, Any]) -> str:
    """The last message's text: the fakes read their instructions from it."""
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content")
    return content if isinstance(content, str) else ""


def completion(completion_id: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": USAGE,
        **extra,
    }


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def event(
    completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None, *, usage: bool = False
) -> bytes:
    """One `data:` event of a streamed completion (`usage: null` in it when usage was asked for)."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = None
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def usage_event(completion_id: str, model: str) -> bytes:
    """The extra last chunk of a stream asked for its usage: no choices, the whole request's tokens."""
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": STREAM_USAGE,
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
