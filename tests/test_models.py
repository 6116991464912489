"""GET /api/models/{chat,image,video}: the catalog in the spec's list shape."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway

SPEC_IDS = {
    "chat": [
        "openai", "openai-fast", "openai-large", "claude", "claude-fast", "gemini", "gemini-large",
        "deepseek", "grok", "mistral", "qwen-coder", "perplexity-fast", "perplexity-reasoning",
        "kimi-k2-thinking", "nova-micro", "chickytutor", "midijourney",
        "mapleai-gpt4o", "mapleai-claude", "mapleai-gemini",
    ],
    "image": [
        "kontext", "turbo", "nanobanana", "nanobanana-pro", "seedream", "seedream-pro", "gptimage",
        "gptimage-large", "flux", "zimage", "mapleai-dalle", "mapleai-flux",
    ],
    "video": ["veo", "seedance", "seedance-pro", "mapleai-veo"],
}  # fmt: skip
MAX_DURATION = {"veo": 8, "seedance": 10, "seedance-pro": 10, "mapleai-veo": 8}


@pytest.mark.parametrize("modality", ["chat", "image", "video"])
def test_listing_has_every_spec_model_once_in_the_spec_shape(gateway: Gateway, modality: str) -> None:
    response = gateway.client.get(f"/api/models/{modality}")
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    assert [item["id"] for item in listing["data"]] == SPEC_IDS[modality]
    for item in listing["data"]:
        assert {"id", "name", "provider", "description"} <= set(item)
        assert item["provider"] in ("pollinations", "mapleai")
        assert item["provider"] == ("mapleai" if item["id"].startswith("mapleai-") else "pollinations")
        assert "upstream" not in item


def test_video_models_carry_max_duration(gateway: Gateway) -> None:
    data = gateway.client.get("/api/models/video").json()["data"]
    assert {item["id"]: item["maxDuration"] for item in data} == MAX_DURATION


def test_chat_models_carry_context_window(gateway: Gateway) -> None:
    data = {item["id"]: item for item in gateway.client.get("/api/models/chat").json()["data"]}
    assert data["gemini-large"]["contextWindow"] == 2_000_000
    assert data["deepseek"]["contextWindow"] == 64_000


def test_every_response_carries_its_own_request_id(gateway: Gateway) -> None:
    first, second = (
        gateway.client.get("/api/models/image").headers["X-Request-Id"],
        gateway.client.get("/api/models/image").headers["X-Request-Id"],
    )
    assert first.startswith("req_") and first != second


def test_vercel_json_headers_are_applied_by_the_local_server(gateway: Gateway) -> None:
    assert gateway.client.get("/api/models/chat").headers["X-Content-Type-Options"] == "nosniff"


def test_landing_page_is_served_from_public(gateway: Gateway) -> None:
    response = gateway.client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "CloudGPT" in response.text
