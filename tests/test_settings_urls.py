"""URL settings normalised and validated, and the names Vercel's Upstash integration uses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lib.settings import SettingsError, load
from tests.conftest import AS_ON_VERCEL, Gateway
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import access_token, store_env
from tests.postgres import Postgres
from tests.upstash_fixtures import UPSTASH_TOKEN

URL_SETTINGS = ("POLLINATIONS_BASE_URL", "MAPLEAI_BASE_URL", "SUPABASE_URL", "UPSTASH_REDIS_REST_URL")


def _with(name: str, value: str) -> dict[str, str]:
    env = {name: value}
    if name == "UPSTASH_REDIS_REST_URL":
        env["UPSTASH_REDIS_REST_TOKEN"] = "secret-token"
    return env


@pytest.mark.parametrize("name", URL_SETTINGS)
def test_every_url_setting_loses_its_trailing_slashes(name: str) -> None:
    current = load(_with(name, "https://project.example.co//"))
    field = {"UPSTASH_REDIS_REST_URL": "upstash_redis_rest_url"}.get(name, name.lower())
    assert getattr(current, field) == "https://project.example.co"


@pytest.mark.parametrize("name", URL_SETTINGS)
@pytest.mark.parametrize(
    "value", ["project.example.co", "ftp://project.example.co", "https://", "https://x.co/?key=1"]
)
def test_every_url_setting_that_is_not_an_http_url_is_refused_in_one_line_by_name(
    name: str, value: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load(_with(name, value))
    assert raised.value.message == f"CloudGPT is misconfigured: {name} must be an http(s) URL."
    assert raised.value.code == "gateway_misconfigured"


def test_vercel_kv_variables_configure_upstash_when_upstash_own_are_absent() -> None:
    current = load({"KV_REST_API_URL": "https://kv.upstash.io/", "KV_REST_API_TOKEN": "kv-token"})
    assert (current.upstash_redis_rest_url, current.upstash_redis_rest_token) == (
        "https://kv.upstash.io",
        "kv-token",
    )


def test_upstash_own_variables_win_over_vercel_kv_ones() -> None:
    current = load(
        {
            "UPSTASH_REDIS_REST_URL": "https://own.upstash.io",
            "UPSTASH_REDIS_REST_TOKEN": "own-token",
            "KV_REST_API_URL": "https://kv.upstash.io",
            "KV_REST_API_TOKEN": "kv-token",
        }
    )
    assert (current.upstash_redis_rest_url, current.upstash_redis_rest_token) == (
        "https://own.upstash.io",
        "own-token",
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KV_REST_API_URL": "https://kv.upstash.io"}, "KV_REST_API_TOKEN"),
        ({"KV_REST_API_TOKEN": "secret-token"}, "KV_REST_API_URL"),
        # Half of Upstash's own pair is an error even when the KV pair is complete.
        (
            {
                "UPSTASH_REDIS_REST_URL": "https://own.upstash.io",
                "KV_REST_API_URL": "https://kv.upstash.io",
                "KV_REST_API_TOKEN": "secret-token",
            },
            "UPSTASH_REDIS_REST_TOKEN",
        ),
    ],
)
def test_half_an_upstash_pair_is_refused_by_the_missing_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(env)
    assert named in raised.value.message
    assert "secret-token" not in raised.value.message


def test_on_vercel_the_upstash_integration_variables_serve_limited_requests(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(
        AS_ON_VERCEL, VERCEL="1", KV_REST_API_URL=upstash.url + "/", KV_REST_API_TOKEN=UPSTASH_TOKEN
    )
    body = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}
    response = gateway.client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Remaining"] == "9"
    assert upstash.requests >= 1


def test_a_supabase_url_with_a_trailing_slash_still_accepts_its_access_tokens(
    start_gateway: Callable[..., Gateway], supabase: FakeSupabase, postgres: Postgres
) -> None:
    env = store_env("supabase", supabase) | {"SUPABASE_URL": supabase.url + "/"}
    gateway = start_gateway(**env)
    token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
    response = gateway.client.get("/api/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
