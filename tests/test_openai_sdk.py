"""The official OpenAI Python SDK against the local server, changed in nothing but `base_url` and key."""

from __future__ import annotations

import base64
from collections.abc import Callable

import openai
import pytest

from lib import catalog
from tests.api_fixtures import issue_key
from tests.conftest import Gateway
from tests.fakes import files
from tests.fakes.pollinations import COMPLETION_ID, FakePollinations
from tests.key_stores import JWT_SECRET

MESSAGES = [{"role": "user", "content": "Hello"}]


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    """The SDK as a user sets it up; it retries nothing, so each call is one request."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def client(open_gateway: Gateway, api_key: str) -> openai.OpenAI:
    return sdk(open_gateway, api_key)


def test_chat_completion_is_the_providers_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="openai", messages=MESSAGES)
    assert completion.id == COMPLETION_ID
    assert completion.choices[0].message.content == "echo: Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 12


def test_chat_completion_carries_limit_and_provider_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="mapleai-gpt4o", messages=MESSAGES)
    assert raw.headers["X-CloudGPT-Provider"] == "mapleai"
    assert int(raw.headers["X-RateLimit-Remaining"]) < int(raw.headers["X-RateLimit-Limit"])
    assert raw.parse().choices[0].message.content == "echo: Hello"


def test_streamed_chat_completion_arrives_as_chunks(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="openai", messages=MESSAGES, stream=True))
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "echo:Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_completions_message_can_be_sent_back_as_it_came(
    client: openai.OpenAI, upstream: FakePollinations
) -> None:
    """The SDK's tool-calling loop appends the answer's message to the conversation unchanged."""
    first = client.chat.completions.create(model="openai", messages=MESSAGES)
    answer = first.choices[0].message.model_copy(update={"annotations": [], "refusal": None})
    follow_up = [*MESSAGES, answer, {"role": "user", "content": "and again"}]
    client.chat.completions.create(model="openai", messages=follow_up, max_completion_tokens=50, n=1)
    sent = upstream.received("and again").body
    assert sent["messages"][1] == {"role": "assistant", "content": "echo: Hello"}
    assert (sent["max_tokens"], "max_completion_tokens" in sent, "n" in sent) == (50, False, False)


def test_a_stream_failing_midway_raises_the_sdks_api_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="openai", messages=[{"role": "user", "content": "errorevent"}], stream=True
    )
    with pytest.raises(openai.APIError, match="pollinations failed mid-stream"):
        list(stream)


def test_models_list_has_every_catalog_model_owned_by_its_provider(client: openai.OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert list(listed) == [model.id for model in catalog.every_model()]
    assert listed["openai"].owned_by == "pollinations"
    assert listed["mapleai-veo"].owned_by == "mapleai"
    assert {model.object for model in listed.values()} == {"model"}
    assert all(model.created > 1_700_000_000 for model in listed.values())


def test_models_retrieve_finds_any_modality_and_404s_the_unknown(client: openai.OpenAI) -> None:
    assert client.models.retrieve("flux").owned_by == "pollinations"
    assert client.models.retrieve("veo").model_extra["modality"] == "video"
    for unknown in ("dall-e-9", "chat"):  # /api/models/chat is a listing, but no model is called "chat"
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve(unknown)
        assert raised.value.code == "model_not_found"


def test_images_generate_answers_the_providers_image_in_base64(
    client: openai.OpenAI, upstream: FakePollinations
) -> None:
    images = client.images.generate(model="flux", prompt="a red fox in snow", size="512x768")
    assert base64.b64decode(images.data[0].b64_json) == files.png(4, 3)
    assert images.output_format == "png"
    _, query = upstream.received_media("a red fox in snow")
    assert (query["width"], query["height"]) == ("512", "768")


def test_images_generate_from_mapleai_decodes_to_its_image(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model="mapleai-dalle", prompt="a blue bird", response_format="b64_json"
    )
    assert raw.headers["X-CloudGPT-Provider"] == "mapleai"
    assert base64.b64decode(raw.parse().data[0].b64_json) == files.png(2, 2)


@pytest.mark.parametrize(
    ("fields", "param", "why"),
    [
        ({"response_format": "url"}, "response_format", "it has no URL to give"),
        ({"size": "4096x4096"}, "size", "each side must be 64 to 2048 pixels"),
        ({"n": 2}, "n", "Input should be 1"),
    ],
)
def test_images_generate_refuses_what_it_cannot_do_saying_why(
    client: openai.OpenAI, fields: dict, param: str, why: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="flux", prompt="a fox", **fields)
    assert raised.value.param == param
    assert f"Invalid '{param}': " in raised.value.message and why in raised.value.message


def test_an_endpoint_cloudgpt_lacks_raises_not_found_naming_the_ones_it_has(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert raised.value.code == "route_not_found"
    assert "/v1/embeddings" in raised.value.message and "/v1/chat/completions" in raised.value.message


def test_a_bad_key_raises_authentication_error(open_gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(open_gateway, "cgpt_not-a-real-key").chat.completions.create(model="openai", messages=MESSAGES)
    assert raised.value.code == "invalid_api_key"


def test_an_unknown_model_raises_bad_request_naming_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-17", messages=MESSAGES)
    assert (raised.value.code, raised.value.param) == ("model_not_found", "model")


def test_the_rate_limit_raises_rate_limit_error_with_retry_after(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(SUPABASE_JWT_SECRET=JWT_SECRET, RATE_LIMIT_CHAT_AUTHENTICATED="1")
    client = sdk(gateway, issue_key(gateway))
    # With a limit of 1, two of any three quick calls share a minute: the second of those is refused.
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(3):
            client.chat.completions.create(model="openai", messages=MESSAGES)
    assert raised.value.code == "rate_limit_exceeded"
    assert 1 <= int(raised.value.response.headers["Retry-After"]) <= 60
