"""Every bad request is a 4xx in the error envelope: never a 500, never a hang."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def assert_envelope(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param", "requestId"}
    assert error["requestId"] == response.headers["X-Request-Id"]  # the id to quote, in the body too
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param
        assert param in error["message"]
    return error


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"a string"', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_body_that_is_not_a_json_object_is_a_400(gateway: Gateway, raw: bytes, code: str) -> None:
    response = gateway.client.post("/api/chat", content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(response, 400, code)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"messages": USER}, "missing_field", "model"),
        ({"model": "openai"}, "missing_field", "messages"),
        ({"model": "openai", "messages": []}, "invalid_value", "messages"),
        ({"model": "openai", "messages": "hi"}, "invalid_value", "messages"),
        ({"model": 5, "messages": USER}, "invalid_value", "model"),
        ({"model": "openai", "messages": USER, "temperature": 3}, "invalid_value", "temperature"),
        ({"model": "openai", "messages": USER, "temperature": -0.1}, "invalid_value", "temperature"),
        ({"model": "openai", "messages": USER, "temperature": "0.5"}, "invalid_value", "temperature"),
        ({"model": "openai", "messages": USER, "max_tokens": 0}, "invalid_value", "max_tokens"),
        ({"model": "openai", "messages": USER, "max_tokens": 1.5}, "invalid_value", "max_tokens"),
        ({"model": "openai", "messages": USER, "stream": "yes"}, "invalid_value", "stream"),
        ({"model": "openai", "messages": USER, "top_p": 2}, "invalid_value", "top_p"),
        ({"model": "openai", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "invalid_value", "stop"),
        ({"model": "openai", "messages": USER, "tool_choice": "sometimes"}, "invalid_value", "tool_choice"),
        ({"model": "openai", "messages": USER, "temprature": 1}, "unknown_field", "temprature"),
        ({"model": "openai", "messages": USER, "user": 5}, "invalid_value", "user"),
        ({"model": "openai", "messages": [{"role": "user", "content": "x", "name": 5}]},
         "invalid_value", "messages[0].name"),
        ({"model": "openai", "messages": [{"role": "robot", "content": "x"}]}, "invalid_value", "messages[0].role"),
        ({"model": "openai", "messages": [{"role": "user"}]}, "missing_field", "messages[0].content"),
        ({"model": "openai", "messages": [{"content": "x"}]}, "missing_field", "messages[0].role"),
        ({"model": "openai", "messages": [{"role": "user", "content": 5}]}, "invalid_value", "messages[0].content"),
        ({"model": "openai", "messages": [{"role": "user", "content": "x", "mood": 1}]},
         "unknown_field", "messages[0].mood"),
        ({"model": "openai", "messages": [{"role": "tool", "content": "x"}]}, "missing_field", "messages[0].tool_call_id"),
        ({"model": "openai", "messages": [{"role": "assistant"}]}, "invalid_value", "messages[0]"),
        ({"model": "openai", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "invalid_value", "messages[0].content[0]"),
        ({"model": "nonexistent", "messages": USER}, "model_not_found", "model"),
        ({"model": "flux", "messages": USER}, "model_not_found", "model"),
    ],
)  # fmt: skip
def test_invalid_chat_body_is_a_400_naming_the_field(
    gateway: Gateway, body: dict, code: str, param: str
) -> None:
    assert_envelope(gateway.client.post("/api/chat", json=body), 400, code, param)


def test_image_model_on_chat_says_what_it_is(gateway: Gateway) -> None:
    error = assert_envelope(gateway.client.post("/api/chat", json={"model": "flux", "messages": USER}), 400,
                            "model_not_found")  # fmt: skip
    assert "image model" in error["message"]


def test_six_mib_body_is_a_413(gateway: Gateway) -> None:
    big = json.dumps({"model": "openai", "messages": [{"role": "user", "content": "x" * (6 << 20)}]})
    response = gateway.client.post("/api/chat", content=big, headers={"Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


def test_chunked_body_over_the_cap_is_a_413(gateway: Gateway) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = gateway.client.post(
        "/api/chat", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 413, "payload_too_large")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_a_405_with_allow(gateway: Gateway, method: str) -> None:
    response = gateway.client.request(method, "/api/chat")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"


def test_post_to_a_models_listing_is_a_405(gateway: Gateway) -> None:
    response = gateway.client.post("/api/models/chat", json={})
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, OPTIONS"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Bearer cgpt_notarealkey", "invalid_api_key"),
        ("Bearer sk-something-else", "invalid_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
        ("", "invalid_authorization"),
    ],
)
def test_authorization_that_cannot_be_verified_is_a_401(
    gateway: Gateway, authorization: str, code: str
) -> None:
    response = gateway.client.post(
        "/api/chat", json={"model": "openai", "messages": USER}, headers={"Authorization": authorization}
    )
    error = assert_envelope(response, 401, code)
    assert error["type"] == "authentication_error"
    assert "cgpt_notarealkey" not in response.text


def test_unknown_route_is_a_404_in_the_envelope(gateway: Gateway) -> None:
    assert_envelope(gateway.client.get("/api/nothing-here"), 404, "route_not_found")
