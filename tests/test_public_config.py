"""GET /api/config: how the pages sign people in, the limits and the base URL, in every mode."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lib.public_config import origin
from lib.settings import load, settings
from lib.web import Request
from tests.conftest import AS_ON_VERCEL, Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import JWT_SECRET


def config(gateway: Gateway, **headers: str) -> dict:
    response = gateway.client.get("/api/config", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "public, max-age=60"
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
    ("vercel", "environ", "expected"),
    [
        ("1", {"wsgi.url_scheme": "https", "HTTP_HOST": "x.vercel.app", "HTTP_X_FORWARDED_HOST": "cloudgpt.dev"},
         "https://cloudgpt.dev"),
        ("1", {"wsgi.url_scheme": "https", "HTTP_HOST": "cloudgpt.dev"}, "https://cloudgpt.dev"),
        ("", {"HTTP_HOST": "127.0.0.1:3000", "HTTP_X_FORWARDED_HOST": "evil.example"}, "http://127.0.0.1:3000"),
        ("", {"SERVER_NAME": "localhost", "SERVER_PORT": "8080"}, "http://localhost:8080"),
    ],
)  # fmt: skip
def test_the_base_url_is_the_origin_the_caller_reached(
    monkeypatch: pytest.MonkeyPatch, vercel: str, environ: dict[str, str], expected: str
) -> None:
    # In-process: the local server (waitress) drops X-Forwarded-Host before the app sees it.
    monkeypatch.setenv("VERCEL", vercel)
    settings.cache_clear()
    try:
        assert origin(Request({"wsgi.url_scheme": "http", **environ})) == expected
    finally:
        monkeypatch.undo()
        settings.cache_clear()


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
