"""Settings: documented defaults, and malformed values refused by name, never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.settings import SettingsError, load
from tests.conftest import AS_ON_VERCEL, ROOT


def test_defaults_are_the_documented_ones() -> None:
    current = load({})
    assert current.pollinations_base_url == "https://gen.pollinations.ai"
    assert current.mapleai_base_url == "https://api.mapleai.de"
    assert current.data_dir == Path(".cloudgpt")
    assert current.max_body_bytes == 1024 * 1024
    assert (current.host, current.port) == ("127.0.0.1", 3000)
    assert not current.on_vercel
    limits = {m: (lim.anonymous, lim.authenticated) for m, lim in current.limits.items()}
    assert limits == {"chat": (10, 60), "image": (5, 30), "video": (2, 10)}


def test_variables_override_defaults() -> None:
    current = load(
        {
            "POLLINATIONS_BASE_URL": "http://127.0.0.1:9999/",
            "RATE_LIMIT_VIDEO_AUTHENTICATED": "25",
            "UPSTREAM_READ_TIMEOUT": "2.5",
            "VERCEL": "1",
            "POLLINATIONS_API_KEY": "  ",
        }
    )
    assert current.pollinations_base_url == "http://127.0.0.1:9999"
    assert current.limits["video"].authenticated == 25
    assert current.upstream_read_timeout == 2.5
    assert current.on_vercel
    assert current.pollinations_api_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("RATE_LIMIT_CHAT_ANONYMOUS", "-1"),
        ("RATE_LIMIT_IMAGE_AUTHENTICATED", "2.5"),
        ("CLOUDGPT_MAX_BODY_BYTES", "0"),
        ("UPSTREAM_CONNECT_TIMEOUT", "soon"),
        ("POLLINATIONS_BASE_URL", "gen.pollinations.ai"),
        ("SUPABASE_AUTH_METHODS", "password;github"),
    ],
)
def test_malformed_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load({name: value})
    assert name in raised.value.message
    assert value not in raised.value.message
    assert raised.value.status == 503


def test_the_local_server_refuses_to_start_misconfigured() -> None:
    env = {**os.environ, "PORT": "eighty"}
    done = subprocess.run(
        [sys.executable, "-m", "lib.devserver"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert done.returncode != 0
    assert b"PORT must be a positive int" in done.stderr
    assert b"Traceback" not in done.stderr


def test_a_misconfigured_function_answers_503_naming_the_variable(start_gateway) -> None:
    gateway = start_gateway(AS_ON_VERCEL, UPSTREAM_READ_TIMEOUT="sk-oops-a-secret")
    response = gateway.client.post("/api/chat", json={"model": "openai", "messages": []})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "gateway_misconfigured"
    assert "UPSTREAM_READ_TIMEOUT" in error["message"]
    assert "sk-oops" not in response.text
