"""POST /api/chat end to end: local server -> gateway -> fake Pollinations, over real HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from tests.api_fixtures import assert_first_chunk_arrives_before_the_rest
from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.pollinations import FakePollinations


def chat(gateway: Gateway, content: str, **fields: object) -> httpx.Response:
    body = {"model": "openai", "messages": [{"role": "user", "content": content}], **fields}
    return gateway.client.post("/api/chat", json=body)


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_spec_curl_example_returns_a_chat_completion(gateway: Gateway) -> None:
    out = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{gateway.url}/api/chat",
            "-H", "Content-Type: application/json",
            "-d", '{"model": "openai", "messages": [{"role": "user", "content": "Write a haiku about AI"}]}',
        ],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    completion = json.loads(out.stdout)
    assert completion["object"] == "chat.completion"
    assert isinstance(completion["id"], str) and isinstance(completion["created"], int)
    assert completion["model"] == "openai"
    (choice,) = completion["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "echo: Write a haiku about AI"}
    assert completion["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_request_reaches_pollinations_with_server_credential_and_defaults(
    gateway: Gateway, upstream: FakePollinations
) -> None:
    response = chat(gateway, "forwarding check", top_p=0.5, stop=["\n"], seed=7, user="u-1")
    assert response.status_code == 200
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    sent = upstream.received("forwarding check")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.body == {
        "model": "openai",
        "messages": [{"role": "user", "content": "forwarding check"}],
        "temperature": 0.7,
        "stream": False,
        "top_p": 0.5,
        "stop": ["\n"],
        "seed": 7,
        "user": "u-1",
    }


def test_openai_fields_and_multipart_content_are_forwarded(
    gateway: Gateway, upstream: FakePollinations
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {
        "model": "claude",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                   "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "multipart check"},
        ],
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "max_tokens": 50,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }  # fmt: skip
    assert gateway.client.post("/api/chat", json=body).status_code == 200
    sent = upstream.received("multipart check").body
    assert sent["model"] == "claude"
    assert sent["messages"] == body["messages"]
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["max_tokens"], sent["presence_penalty"], sent["frequency_penalty"]) == (50, 0.5, -0.5)


def test_stream_relays_chunks_and_ends_with_done(gateway: Gateway) -> None:
    response = chat(gateway, "stream me", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["X-RateLimit-Remaining"].isdigit()
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "echo:stream me"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_forwards_each_chunk_before_the_upstream_finishes(
    gateway: Gateway, upstream: FakePollinations
) -> None:
    # The fake sends one chunk, then holds the rest until the test opens the gate
    # (or 10 s pass): the first chunk can only arrive early if nothing buffers it.
    gate = upstream.gate("incremental")
    body = {"model": "openai", "messages": [{"role": "user", "content": "gate:incremental"}], "stream": True}
    assert_first_chunk_arrives_before_the_rest(gateway.client, gate, json=body)


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("cut", "upstream_stream_cut"),
        ("nodone", "upstream_stream_incomplete"),
        ("malformed", "upstream_malformed"),
        ("scalar", "upstream_malformed"),
        ("errorevent", "upstream_stream_error"),
    ],
)
def test_broken_stream_ends_in_an_error_event_never_done(gateway: Gateway, marker: str, code: str) -> None:
    response = chat(gateway, marker, stream=True)
    events = sse_events(response.text)
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == code


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("status:400", 400, "upstream_bad_request"),
        ("status:401", 502, "upstream_auth_failed"),
        ("status:403", 502, "upstream_auth_failed"),
        ("status:402", 503, "upstream_out_of_credit"),
        ("status:429", 429, "upstream_rate_limited"),
        ("status:500", 502, "upstream_error"),
        ("status:503", 502, "upstream_error"),
        ("html", 502, "upstream_malformed"),
    ],
)
def test_upstream_failures_map_to_gateway_errors(
    gateway: Gateway, marker: str, status: int, code: str
) -> None:
    response = chat(gateway, marker)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert UPSTREAM_KEY not in response.text
    if status == 400:
        assert "fake upstream error 400" in error["message"]
    if status == 429:
        assert response.headers["Retry-After"] == "7"


def test_upstream_error_before_a_stream_is_a_json_error(gateway: Gateway) -> None:
    response = chat(gateway, "status:500", stream=True)
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "upstream_error"


def test_stalled_upstream_is_a_504_in_bounded_time(start_gateway) -> None:
    gateway = start_gateway(UPSTREAM_FIRST_BYTE_TIMEOUT="0.5")
    started = time.monotonic()
    response = chat(gateway, "slow:3")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5


def test_unreachable_upstream_is_a_502(start_gateway) -> None:
    gateway = start_gateway(POLLINATIONS_BASE_URL="http://127.0.0.1:9", UPSTREAM_BACKOFF="0.01")
    response = chat(gateway, "anyone there?")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"
