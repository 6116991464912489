"""MapleAI chat end to end: local server -> gateway -> fake MapleAI, over real HTTP.

MapleAI's models answer exactly like Pollinations' ones: the same JSON completion,
the same SSE chunks ending in `data: [DONE]`, the same error envelope.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Gateway
from tests.fakes.faults import FaultyUpstream
from tests.mapleai_fixtures import MAPLEAI_KEY
from tests.test_chat import sse_events


def ask(gateway: Gateway, model: str, content: str, **fields: object):
    body = {"model": model, "messages": [{"role": "user", "content": content}], **fields}
    return gateway.client.post("/api/chat", json=body)


@pytest.mark.parametrize(
    ("model", "upstream_name"),
    [
        ("mapleai-gpt4o", "gpt-4o"),
        ("mapleai-claude", "claude-3-5-sonnet"),
        ("mapleai-gemini", "gemini-2.0-flash"),
    ],
)
def test_mapleai_models_reach_mapleai_with_its_model_name_and_our_key(
    resilient: Gateway, faults: FaultyUpstream, model: str, upstream_name: str
) -> None:
    content = f"hello {model}"
    response = ask(resilient, model, content, max_tokens=20)
    assert response.status_code == 200
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    (sent,) = faults.received(content)
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {MAPLEAI_KEY}"
    assert sent.body["model"] == upstream_name
    assert sent.body["max_tokens"] == 20 and sent.body["stream"] is False


def test_mapleai_completion_has_the_same_shape_as_a_pollinations_one(resilient: Gateway) -> None:
    maple = ask(resilient, "mapleai-gpt4o", "shape check").json()
    pollinations = ask(resilient, "openai", "shape check").json()
    for completion in (maple, pollinations):
        assert completion["object"] == "chat.completion"
        assert isinstance(completion["id"], str) and isinstance(completion["created"], int)
        (choice,) = completion["choices"]
        assert choice["index"] == 0 and choice["finish_reason"] == "stop"
        assert choice["message"] == {"role": "assistant", "content": "echo: shape check"}
        assert completion["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert maple["model"] == "gpt-4o"


def test_mapleai_stream_relays_chunks_and_ends_with_done(resilient: Gateway) -> None:
    response = ask(resilient, "mapleai-claude", "stream me", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "echo:stream me"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_mapleai_without_a_key_is_a_503_naming_the_setting(gateway: Gateway) -> None:
    response = ask(gateway, "mapleai-gemini", "hi")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "provider_not_configured"
    assert "MAPLEAI_API_KEY" in error["message"]
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"


def test_mapleai_error_bodies_never_leak_the_key_or_a_traceback(resilient: Gateway) -> None:
    rejected = ask(resilient, "mapleai-gpt4o", "status:400 leak")
    assert rejected.status_code == 400
    assert "too long" in rejected.json()["error"]["message"]
    assert "[redacted]" in rejected.json()["error"]["message"]
    assert MAPLEAI_KEY not in rejected.text
    failed = ask(resilient, "mapleai-gpt4o", "status:500 leak")
    assert failed.status_code == 502
    assert "Traceback" not in failed.text and "app.py" not in failed.text
