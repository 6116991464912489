"""Which web pages may call the API from a browser: CLOUDGPT_CORS_ORIGINS, any on Vercel, none but its own locally."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lib.settings import SettingsError, load
from tests.conftest import Gateway
from tests.fakes.pollinations import FakePollinations

ELSEWHERE = "https://some-page.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
EXPOSED = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "X-Request-Id")


def chat(marker: str) -> dict:
    return {"model": "openai", "messages": [{"role": "user", "content": marker}]}


def test_locally_a_page_elsewhere_is_refused_before_its_call_costs_anything(
    gateway: Gateway, upstream: FakePollinations
) -> None:
    # Every tab of the operator's browser shares 127.0.0.1 and the operator's provider keys.
    refused = gateway.client.post("/api/chat", json=chat("from elsewhere"), headers={"Origin": ELSEWHERE})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused.headers
    with pytest.raises(LookupError):
        upstream.received("from elsewhere")  # the provider was never asked
    preflight = gateway.client.options("/api/chat", headers={"Origin": ELSEWHERE, **PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in preflight.headers  # so the browser sends nothing


def test_locally_the_pages_own_origin_and_callers_without_one_are_served(gateway: Gateway) -> None:
    own = gateway.client.post("/api/chat", json=chat("own page"), headers={"Origin": gateway.url})
    assert own.status_code == 200, own.text
    assert own.headers["Vary"] == "Origin"
    assert gateway.client.post("/api/chat", json=chat("curl")).status_code == 200  # no Origin: not a page


def test_a_listed_origin_may_call_and_read_the_answer_and_others_may_not(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(CLOUDGPT_CORS_ORIGINS="https://app.example, http://localhost:5173/")
    preflight = gateway.client.options("/api/chat", headers={"Origin": "https://app.example", **PREFLIGHT})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    answer = gateway.client.post(
        "/api/chat", json=chat("listed"), headers={"Origin": "http://localhost:5173"}
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert answer.headers["Vary"] == "Origin"
    assert all(name in answer.headers["Access-Control-Expose-Headers"] for name in EXPOSED)
    refused = gateway.client.get("/api/models", headers={"Origin": ELSEWHERE})
    assert refused.status_code == 403


def test_with_any_origin_every_answer_says_so_without_credentials(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(CLOUDGPT_CORS_ORIGINS="*")
    preflight = gateway.client.options("/api/chat", headers={"Origin": ELSEWHERE, **PREFLIGHT})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    answer = gateway.client.get("/api/models/image", headers={"Origin": ELSEWHERE})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert all(name in answer.headers["Access-Control-Expose-Headers"] for name in EXPOSED)


@pytest.mark.parametrize(
    ("env", "origins"),
    [
        ({}, ()),  # locally: the pages' own origin only
        ({"VERCEL": "1"}, ("*",)),  # on Vercel: a public API, every visitor on their own budget
        ({"VERCEL": "1", "CLOUDGPT_CORS_ORIGINS": "https://App.example/"}, ("https://app.example",)),
        ({"CLOUDGPT_CORS_ORIGINS": " * "}, ("*",)),
    ],
)
def test_the_default_is_any_origin_on_vercel_and_none_locally(env: dict[str, str], origins: tuple) -> None:
    assert load(env).cors_origins == origins


@pytest.mark.parametrize(
    "value", ["https://app.example/path", "app.example", "*, https://app.example", "ftp://x"]
)
def test_a_malformed_origin_list_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="CLOUDGPT_CORS_ORIGINS"):
        load({"CLOUDGPT_CORS_ORIGINS": value})
