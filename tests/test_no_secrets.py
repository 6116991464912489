"""No answer of any route ever carries a secret: not the secret (service-role) key, the JWT secret,
the Upstash token, a provider's key or the local sign-in secret.

Every documented path with every method, every file of public/ and an unknown
path are requested with each kind of credential (none, malformed, unknown key,
access token, valid key) and bodies good and bad, including provider failures;
status lines, headers and bodies are searched for each secret.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lib.openapi import document
from tests.api_fixtures import UNLIMITED
from tests.conftest import ROOT, UPSTREAM_KEY, Gateway
from tests.fakes.mapleai import FakeMapleAI
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET, access_token, new_keys_env, printed_code, store_env
from tests.mapleai_fixtures import MAPLEAI_KEY
from tests.upstash_fixtures import UPSTASH_TOKEN, upstash_env

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
# The fake providers' switches: errors, a page instead of JSON, a stream.
CHATS = [
    CHAT,
    *({**CHAT, "messages": [{"role": "user", "content": c}]} for c in ("status:400", "status:401", "html:x")),
]
BODIES: dict[str, list[dict]] = {
    "/api/chat": [*CHATS, {**CHAT, "stream": True}],
    "/v1/chat/completions": CHATS,
    "/api/image": [{"prompt": "a cat", "model": "flux"}, {"prompt": "status:401", "model": "mapleai-flux"}],
    "/api/images/generations": [{"prompt": "a cat", "model": "flux"}],
    "/v1/images/generations": [{"prompt": "status:401", "model": "flux"}],
    "/api/video": [{"prompt": "waves", "model": "veo"}, {"prompt": "status:401", "model": "mapleai-veo"}],
    "/api/keys": [{"name": "a key"}],
}

FAST = {"UPSTREAM_BACKOFF": "0.01"}  # provider errors are retried: quickly here


def requests(credentials: list[str | None]) -> Iterator[tuple[str, str, dict[str, str], bytes | None]]:
    """(method, path, headers, body) for every route, credential and body worth trying."""
    for path, operations in document()["paths"].items():
        concrete = path.replace("{id}", "openai" if "models" in path else "key_" + "a" * 20)
        for method in ("get", "post", "delete", "put", "options"):
            bodies: list[bytes | None] = [None]
            if method in operations and method == "post":
                bodies += [b"{}", b"not json", *(json.dumps(b).encode() for b in BODIES.get(path, []))]
            for credential in credentials if method in operations else [None]:
                headers = {"Authorization": f"Bearer {credential}"} if credential else {}
                for body in bodies:
                    yield method.upper(), concrete, headers | {"Content-Type": "application/json"}, body
    for file in (ROOT / "public").rglob("*"):
        if file.is_file():
            yield "GET", "/" + str(file.relative_to(ROOT / "public")), {}, None
    yield "GET", "/no/such/page", {}, None
    yield "POST", "/v1/embeddings", {}, b"{}"


def leaks(gateway: Gateway, credentials: list[str | None], secrets: dict[str, str]) -> list[str]:
    found, answered = [], 0
    for method, path, headers, body in requests(credentials):
        response = gateway.client.request(method, path, headers=headers, content=body)
        answered += 1
        seen = (
            response.content + repr(response.headers.multi_items()).encode() + response.reason_phrase.encode()
        )
        found += [
            f"{name} in {method} {path} ({response.status_code})"
            for name, v in secrets.items()
            if v.encode() in seen
        ]
    assert answered > 300  # the whole surface was asked
    return found


@pytest.fixture(scope="module")
def everything_configured(
    start_module_gateway: Callable[..., Gateway],
    supabase: FakeSupabase,
    mapleai: FakeMapleAI,
    upstash_emulator: UpstashEmulator,
) -> Gateway:
    """Supabase for accounts and keys, Upstash for counters, both providers with their keys."""
    return start_module_gateway(
        **store_env("supabase", supabase)
        | upstash_env(upstash_emulator.url)
        | UNLIMITED
        | {
            "SUPABASE_ANON_KEY": supabase.anon_key,
            "MAPLEAI_BASE_URL": mapleai.url,
            "MAPLEAI_API_KEY": MAPLEAI_KEY,
        }
    )


def credentials_for(gateway: Gateway, token: str) -> list[str | None]:
    """None, malformed, an unknown key, an access token, and a valid key made with it."""
    key = gateway.client.post("/api/keys", headers={"Authorization": f"Bearer {token}"})
    assert key.status_code == 201, key.text
    return [None, "not a token", "cgpt_unknown", token, key.json()["key"]]


def test_no_answer_carries_a_secret_with_supabase_and_upstash(
    everything_configured: Gateway, supabase: FakeSupabase
) -> None:
    session = httpx.post(
        f"{supabase.url}/auth/v1/signup",
        json={"email": f"{uuid.uuid4().hex}@example.com", "password": "a password"},
        headers={"apikey": supabase.anon_key},
    ).json()
    secrets = {
        "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "UPSTASH_REDIS_REST_TOKEN": UPSTASH_TOKEN,
        "POLLINATIONS_API_KEY": UPSTREAM_KEY,
        "MAPLEAI_API_KEY": MAPLEAI_KEY,
    }
    gateway = everything_configured
    assert leaks(gateway, credentials_for(gateway, session["access_token"]), secrets) == []


def test_no_answer_carries_a_secret_with_only_new_supabase_keys(
    start_gateway: Callable[..., Gateway], supabase_new_keys: FakeSupabase, upstash_emulator: UpstashEmulator
) -> None:
    """A project on publishable and secret keys: the secret key is in no answer; the publishable is public."""
    gateway = start_gateway(**new_keys_env(supabase_new_keys) | upstash_env(upstash_emulator.url) | UNLIMITED)
    key = supabase_new_keys.publishable_key
    session = httpx.post(
        f"{supabase_new_keys.url}/auth/v1/signup",
        json={"email": f"{uuid.uuid4().hex}@example.com", "password": "a password"},
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    ).json()
    secrets = {
        "SUPABASE_SECRET_KEY": supabase_new_keys.secret_key,
        "UPSTASH_REDIS_REST_TOKEN": UPSTASH_TOKEN,
        "POLLINATIONS_API_KEY": UPSTREAM_KEY,
    }
    assert leaks(gateway, credentials_for(gateway, session["access_token"]), secrets) == []


def test_no_answer_carries_a_secret_in_the_embedded_default(
    start_gateway: Callable[..., Gateway], mapleai: FakeMapleAI, tmp_path: Path
) -> None:
    gateway = start_gateway(
        CLOUDGPT_DATA_DIR=str(tmp_path),
        SUPABASE_JWT_SECRET=JWT_SECRET,
        MAPLEAI_BASE_URL=mapleai.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        **UNLIMITED,
        **FAST,
    )
    session = gateway.client.post("/api/session", json={"code": printed_code(gateway)}).json()
    local_secret = json.loads((tmp_path / "local-signin.json").read_text())["secret"]
    secrets = {
        "the local sign-in secret": local_secret,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "POLLINATIONS_API_KEY": UPSTREAM_KEY,
        "MAPLEAI_API_KEY": MAPLEAI_KEY,
    }
    credentials = credentials_for(gateway, session["accessToken"])
    credentials.append(access_token(str(uuid.uuid4())))  # a token signed with the JWT secret
    assert leaks(gateway, credentials, secrets) == []
