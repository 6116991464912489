"""OpenAI's chat completion shapes, as both providers' chat endpoints answer them."""

from __future__ import annotations

import json
import time
from typing import Any


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
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        **extra,
    }


def event(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One `data:` event of a streamed completion."""
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
