"""GET /api/config: how the pages sign people in, the limits and the base URL, in every mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lib.settings import load
from lib.web import Request, origin
from tests.conftest import AS_ON_VERCEL, Gateway, gateway_env
from tests.fakes.pollinations import FakePollinations
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import JWT_SECRET
from tests.vercel_runtime import VercelFunction


def config(gateway: Gateway, **headers: str) -> dict:
    response = gateway.client.get("/api/config", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "private, max-age=60"
    return response.json()


def test_the_embedded_default_signs_in_locally_with_its_limits(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="7", RATE_LIMIT_VIDEO_AUTHENTICATED="3")
    answer = config(gateway)
    assert answer == {
        "baseUrl": f"http://127.0.0.1:{gateway.port}/v1",
        "auth": {"mode": "local", "supabase": None, "methods": []},
        "limits": {
            "chat": {"anonymous": 7, "authenticated": 60},
            "image": {"anonymous": 5, "authenticated": 30},
            "video": {"anonymous": 2, "authenticated": 3},
        },
        "maxKeys": 25,
    }


def test_with_supabase_the_page_gets_the_project_and_its_methods(
    start_gateway: Callable[..., Gateway], supabase: FakeSupabase
) -> None:
    gateway = start_gateway(
        SUPABASE_URL=supabase.url,
        SUPABASE_ANON_KEY=supabase.anon_key,
        SUPABASE_SERVICE_ROLE_KEY=supabase.service_role_key,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        SUPABASE_AUTH_METHODS="password, GitHub,google",
    )
    assert config(gateway)["auth"] == {
        "mode": "supabase",
        "supabase": {"url": supabase.url, "anonKey": supabase.anon_key},
        "methods": ["password", "github", "google"],
    }


def test_on_vercel_without_supabase_there_are_no_accounts(start_gateway: Callable[..., Gateway]) -> None:
    assert config(start_gateway(AS_ON_VERCEL, VERCEL="1"))["auth"] == {
        "mode": "none",
        "supabase": None,
        "methods": [],
    }


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"wsgi.url_scheme": "https", "HTTP_HOST": "cloudgpt.dev", "HTTP_X_FORWARDED_HOST": "evil.example"},
         "https://cloudgpt.dev"),
        ({"HTTP_HOST": "127.0.0.1:3000"}, "http://127.0.0.1:3000"),
        ({"HTTP_HOST": "[::1]:3000"}, "http://[::1]:3000"),
        ({"SERVER_NAME": "localhost", "SERVER_PORT": "8080"}, "http://localhost:8080"),
        ({"HTTP_HOST": "evil.example/phish?", "SERVER_NAME": "localhost", "SERVER_PORT": "8080"},
         "http://localhost:8080"),
        ({"HTTP_HOST": "a b", "SERVER_NAME": "x/y"}, "http://localhost"),
    ],
)  # fmt: skip
def test_the_base_url_is_the_host_the_caller_reached(environ: dict[str, str], expected: str) -> None:
    assert origin(Request({"wsgi.url_scheme": "http", **environ})) == expected


def test_on_vercel_a_clients_forwarded_host_in_any_spelling_is_not_the_base_url(
    upstream: FakePollinations, tmp_path: Path
) -> None:
    # Vercel's runtime writes a client's `X_Forwarded_Host` to HTTP_X_FORWARDED_HOST, over the platform's.
    env = gateway_env(upstream, tmp_path, VERCEL="1")
    function = VercelFunction.from_source("api/config.py", env)
    try:
        for spelling in ("X_Forwarded_Host", "x_forwarded_host", "X-Forwarded-Host"):
            headers = {
                "Host": "cloudgpt.example",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "cloudgpt.example",
                spelling: "evil.example",
            }
            response = function.client.get("/api/config", headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["baseUrl"] == "https://cloudgpt.example/v1"
            # One caller's answer is never a shared cache's answer to another.
            assert response.headers["Cache-Control"] == "private, max-age=60"
    finally:
        function.stop()


def test_supabase_without_its_anon_key_offers_no_sign_in(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway(SUPABASE_URL="http://127.0.0.1:9", SUPABASE_JWT_SECRET=JWT_SECRET)
    assert config(gateway)["auth"]["mode"] == "none"


@pytest.mark.parametrize(
    ("value", "methods"),
    [
        (None, ("password", "magiclink")),
        ("password", ("password",)),
        (" Password , github,password ", ("password", "github")),
    ],
)
def test_sign_in_methods_are_a_lower_case_list_without_repeats(value: str | None, methods: tuple) -> None:
    env = {} if value is None else {"SUPABASE_AUTH_METHODS": value}
    assert load(env).supabase_auth_methods == methods
