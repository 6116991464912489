"""Callers trying to get around the limits: forged keys, and the account routes.

Anyone can make a key with a valid checksum (the checksum is a plain hash), and
each one would cost a key-store round trip. Every lookup is counted per client
address, atomically, before the store is asked (RATE_LIMIT_FAILED_AUTH a minute;
a key that verifies gives its count back), and refused keys are remembered by
the instance, so a flood costs the store a handful of calls however it is timed,
and real keys keep working. The account routes have a budget per user (RATE_LIMIT_ACCOUNT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lib.keys.format import new_key
from tests.conftest import Gateway, gateway_env
from tests.fakes.pollinations import FakePollinations
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import Store, store_env
from tests.test_limits import inside_one_window
from tests.upstash_fixtures import upstash_env
from tests.vercel_runtime import VercelFunction

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}
VERIFY = "cloudgpt_verify_api_key_with_controls"


def chat(client: httpx.Client, key: str, address: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} | ({"X-Forwarded-For": address} if address else {})
    return client.post("/api/chat", json=CHAT, headers=headers)


def own_gateway(store: Store, start_gateway: Callable[..., Gateway], **overrides: str) -> Gateway:
    """A gateway on `store` with its own counters (the store's shared gateway keeps its budgets).

    One worker: each worker process is an instance, with its own memory of verified keys.
    """
    env = {k: v for k, v in store.env.items() if k != "CLOUDGPT_DATA_DIR"}
    return start_gateway(("-m", "lib.devserver", "--port", "{port}", "--workers", "1"), **(env | overrides))


def test_a_flood_of_forged_keys_is_cut_off_before_the_store_and_real_keys_keep_working(
    store: Store, start_gateway: Callable[..., Gateway], request: pytest.FixtureRequest
) -> None:
    gateway = own_gateway(store, start_gateway, RATE_LIMIT_FAILED_AUTH="5")
    real = gateway.client.post("/api/keys", headers=store.auth(store.token(store.new_user()))).json()["key"]
    assert chat(gateway.client, real).status_code == 200
    supabase: FakeSupabase | None = request.getfixturevalue("supabase") if store.kind == "supabase" else None
    asked = supabase.rpc_calls(VERIFY) if supabase else 0
    inside_one_window(10)

    flood = [chat(gateway.client, new_key()) for _ in range(30)]

    assert [r.status_code for r in flood] == [401] * 5 + [429] * 25
    cut_off = flood[-1].json()["error"]
    assert cut_off["code"] == "too_many_failed_authentications"
    assert 1 <= int(flood[-1].headers["Retry-After"]) <= 60
    if supabase:
        assert supabase.rpc_calls(VERIFY) == asked + 5  # the other 25 never reached the store
    assert [chat(gateway.client, real).status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize("store", ["supabase"], indirect=True)  # its calls can be counted from outside
def test_sixty_forged_keys_at_once_reach_the_store_at_most_the_limit_times(
    store: Store,
    start_gateway: Callable[..., Gateway],
    supabase: FakeSupabase,
    backend: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each lookup is counted against the address, atomically, before it is made: however many
    arrive together (here across two worker processes), no more than the limit are let through."""
    env = {k: v for k, v in store.env.items() if k != "CLOUDGPT_DATA_DIR"} | backend
    gateway = start_gateway(**env, RATE_LIMIT_FAILED_AUTH="10")
    inside_one_window(20)
    asked = supabase.rpc_calls(VERIFY)
    with ThreadPoolExecutor(60) as pool:
        statuses = list(pool.map(lambda _: chat(gateway.client, new_key()).status_code, range(60)))
    assert sorted(statuses) == [401] * 10 + [429] * 50
    assert supabase.rpc_calls(VERIFY) - asked == 10


@pytest.mark.parametrize("store", ["supabase"], indirect=True)  # its calls can be counted from outside
def test_a_refused_key_is_refused_again_from_memory(
    store: Store, start_gateway: Callable[..., Gateway], supabase: FakeSupabase
) -> None:
    gateway = own_gateway(store, start_gateway)
    forged, asked = new_key(), supabase.rpc_calls(VERIFY)
    assert [chat(gateway.client, forged).status_code for _ in range(4)] == [401] * 4
    assert supabase.rpc_calls(VERIFY) == asked + 1


@pytest.fixture
def vercel_chat(
    upstream: FakePollinations,
    upstash: UpstashEmulator,
    supabase: FakeSupabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VercelFunction]:
    """api/chat.py under Vercel's runtime, as in production: Supabase keys, Upstash counters."""
    env = gateway_env(
        upstream,
        tmp_path_factory.mktemp("data"),
        VERCEL="1",
        RATE_LIMIT_FAILED_AUTH="5",
        **upstash_env(upstash.url),
        **store_env("supabase", supabase),
    )
    function = VercelFunction.from_source("api/chat.py", env)
    yield function
    function.stop()


@pytest.mark.parametrize("store", ["supabase"], indirect=True)  # on Vercel keys live in Supabase
def test_on_vercel_a_flood_from_one_address_leaves_other_addresses_keys_alone(
    vercel_chat: VercelFunction, store: Store, supabase: FakeSupabase, upstash: UpstashEmulator
) -> None:
    new_user_key = lambda: store.gateway.client.post(  # noqa: E731
        "/api/keys", headers=store.auth(store.token(store.new_user()))
    ).json()["key"]
    seen, unseen = new_user_key(), new_user_key()
    client = vercel_chat.client
    assert chat(client, seen, "203.0.113.66").status_code == 200
    inside_one_window(10)
    asked = supabase.rpc_calls(VERIFY)

    flood = [chat(client, new_key(), "203.0.113.66").status_code for _ in range(20)]

    assert flood == [401] * 5 + [429] * 15
    assert supabase.rpc_calls(VERIFY) == asked + 5
    assert chat(client, seen, "203.0.113.66").status_code == 200  # verified before: from memory
    assert chat(client, unseen, "198.51.100.5").status_code == 200  # another client, a new key
    assert chat(client, new_key(), "198.51.100.5").status_code == 401  # its own budget
    with upstash.connection() as redis:
        buckets = {key.decode().split(":")[3] for key in redis.call("KEYS", "cgpt:rl:auth_failures:*")}
    assert buckets == {"203.0.113.66", "198.51.100.5"}


def test_the_account_routes_have_a_budget_per_user(
    store: Store, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = own_gateway(store, start_gateway, RATE_LIMIT_ACCOUNT="3")
    token = store.token(store.new_user())
    inside_one_window(5)
    created = gateway.client.post("/api/keys", headers=store.auth(token))
    assert created.status_code == 201
    assert created.headers["X-RateLimit-Limit"] == "3"
    assert created.headers["X-RateLimit-Remaining"] == "2"
    key, key_id = created.json()["key"], created.json()["id"]
    listed = gateway.client.get("/api/keys", headers=store.auth(key))  # a key counts against its user
    assert listed.status_code == 200
    deleted = gateway.client.delete(f"/api/keys/{key_id}", headers=store.auth(token))
    assert deleted.status_code == 200
    over = gateway.client.get("/api/keys", headers=store.auth(token))
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    assert "account requests" in over.json()["error"]["message"]
    other = gateway.client.get("/api/keys", headers=store.auth(store.token(store.new_user())))
    assert other.status_code == 200  # another user's budget is their own
