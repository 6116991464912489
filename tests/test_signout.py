"""Signing out with Supabase: the gateway refuses the session's access token at once, on every instance.

Real sockets throughout: the Supabase Auth emulation signs people in, two gateway
processes share the counters (SQLite on one data directory, or Upstash's REST API
in front of a real redis-server), and the token is used on an account route and on chat.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest

from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET, store_env
from tests.upstash_fixtures import upstash_env

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module", params=["sqlite", "upstash"])
def instances(
    request: pytest.FixtureRequest, start_module_gateway: Callable[..., Gateway], supabase: FakeSupabase
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateway processes in Supabase mode sharing one counters store, as two Vercel instances would."""
    env = store_env("supabase", supabase) | {"SUPABASE_ANON_KEY": supabase.anon_key}
    if request.param == "upstash":
        env |= upstash_env(request.getfixturevalue("upstash_emulator").url)
    first = start_module_gateway(**env)
    second = start_module_gateway(**env, CLOUDGPT_DATA_DIR=first.env["CLOUDGPT_DATA_DIR"])
    yield first, second


def signed_up(supabase: FakeSupabase) -> str:
    """A new user's access token, from the emulated Supabase Auth as supabase-js gets it."""
    response = httpx.post(
        f"{supabase.url}/auth/v1/signup",
        headers={"apikey": supabase.anon_key},
        json={"email": f"user-{uuid.uuid4().hex[:12]}@example.com", "password": "correct horse battery"},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def codes(gateway: Gateway, token: str) -> list[tuple[int, str | None]]:
    """What /api/keys and /api/chat answer the token: status and error code of each."""
    answers = [
        gateway.client.get("/api/keys", headers=bearer(token)),
        gateway.client.post("/api/chat", json=CHAT, headers=bearer(token)),
    ]
    return [
        (r.status_code, r.json().get("error", {}).get("code") if r.status_code >= 400 else None)
        for r in answers
    ]


def test_a_signed_out_token_is_refused_on_keys_and_chat_by_every_instance(
    instances: tuple[Gateway, Gateway], supabase: FakeSupabase
) -> None:
    first, second = instances
    mine, theirs = signed_up(supabase), signed_up(supabase)
    for gateway in instances:
        assert codes(gateway, mine) == [(200, None), (200, None)]

    assert first.client.delete("/api/session", headers=bearer(mine)).status_code == 204
    ended = time.monotonic()
    assert codes(second, mine) == [(401, "session_ended"), (401, "session_ended")]  # the other instance
    assert time.monotonic() - ended < 1
    assert codes(first, mine) == [(401, "session_ended"), (401, "session_ended")]
    created = first.client.post("/api/keys", json={"name": "after sign-out"}, headers=bearer(mine))
    assert (created.status_code, created.json()["error"]["code"]) == (401, "session_ended")
    for gateway in instances:  # another user's session goes on
        assert codes(gateway, theirs) == [(200, None), (200, None)]
    assert second.client.delete("/api/session", headers=bearer(mine)).status_code == 204  # twice: still ended


def test_a_refused_session_is_remembered_without_a_store_call(
    start_gateway: Callable[..., Gateway], supabase: FakeSupabase, upstash_emulator: UpstashEmulator
) -> None:
    one_worker = ("-m", "lib.devserver", "--port", "{port}", "--workers", "1")  # one process's memory
    gateway = start_gateway(
        one_worker, **store_env("supabase", supabase), **upstash_env(upstash_emulator.url)
    )
    token = signed_up(supabase)
    assert gateway.client.delete("/api/session", headers=bearer(token)).status_code == 204
    assert codes(gateway, token)[1] == (401, "session_ended")
    before = upstash_emulator.requests
    for _ in range(20):
        assert codes(gateway, token) == [(401, "session_ended"), (401, "session_ended")]
    assert upstash_emulator.requests == before


def test_signing_out_needs_an_access_token_that_names_its_session(
    instances: tuple[Gateway, Gateway], supabase: FakeSupabase
) -> None:
    gateway = instances[0]
    missing = gateway.client.delete("/api/session")
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_credentials")
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "iss": f"{supabase.url}/auth/v1"}
    sessionless = jwt.encode(claims | {"exp": int(time.time()) + 600}, JWT_SECRET, algorithm="HS256")
    refused = gateway.client.delete("/api/session", headers=bearer(sessionless))
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_token")
    forged = gateway.client.delete("/api/session", headers=bearer(sessionless + "x"))
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "invalid_token")
