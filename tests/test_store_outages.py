"""When the stores fail or answer oddly: odd answers are never trusted, outages cost almost nothing.

Every odd answer is fed through the emulators (PostgREST in front of the real
PostgreSQL, Upstash's REST API in front of a real redis-server). The breakers
(CLOUDGPT_BREAKER_FAILURES failures in a row, then a jittered cool-down of up to
CLOUDGPT_BREAKER_COOLDOWN) and the stale key cache (CLOUDGPT_KEY_STALE_SECONDS)
are shown from outside, by what reaches the emulators and how long answers take.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from lib.keys.format import new_key
from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase, error_body
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import access_token, store_env
from tests.postgres import Postgres
from tests.upstash_fixtures import upstash_env

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}
VERIFY = "cloudgpt_verify_api_key_with_controls"
OUTAGE = (503, json.dumps(error_body("PGRST000", "Could not connect with the database")).encode())


def chat(gateway: Gateway, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return gateway.client.post("/api/chat", json=CHAT, headers=headers)


def issue(gateway: Gateway, supabase: FakeSupabase, postgres: Postgres) -> str:
    token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
    response = gateway.client.post("/api/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture(scope="module")
def trusting_nothing(supabase: FakeSupabase, start_module_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway on Supabase whose breaker never opens, so every odd answer reaches it.

    One worker: each is an instance with its own memory of refused keys.
    """
    return start_module_gateway(
        ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"),
        **store_env("supabase", supabase),
        CLOUDGPT_BREAKER_FAILURES="1000",
    )


@pytest.fixture(scope="module")
def on_upstash(
    upstash_emulator: UpstashEmulator, start_module_gateway: Callable[..., Gateway]
) -> dict[str, Gateway]:
    """A gateway on Upstash per failure mode, whose breaker never opens, so every odd count reaches it."""
    env = upstash_env(upstash_emulator.url) | {"CLOUDGPT_BREAKER_FAILURES": "1000"}
    return {mode: start_module_gateway(**env, RATE_LIMIT_FAILURE_MODE=mode) for mode in ("open", "closed")}


USER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"  # fixed: it names test cases, alike in every xdist worker
KEY_ID = "key_" + "a" * 20


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'"' + USER.encode() + b'"',
        b"42",
        b"true",
        json.dumps({"user_id": "not-a-uuid", "key_id": KEY_ID}).encode(),
        json.dumps({"user_id": USER[:-1], "key_id": KEY_ID}).encode(),
        json.dumps({"user_id": USER}).encode(),
        json.dumps({"user_id": USER, "key_id": "nope"}).encode(),
        json.dumps({"user_id": 7, "key_id": KEY_ID}).encode(),
        json.dumps({"user_id": USER, "key_id": KEY_ID, "role": "admin"}).encode(),
        json.dumps([{"user_id": USER, "key_id": KEY_ID}]).encode(),
        b"<html>502 Bad Gateway</html>",
    ],
)
def test_a_verification_answer_that_is_not_a_key_is_a_503_never_a_user(
    trusting_nothing: Gateway, supabase: FakeSupabase, body: bytes
) -> None:
    before = supabase.rpc_calls(VERIFY)
    with supabase.answer_with(200, body):
        response = chat(trusting_nothing, new_key())
    assert supabase.rpc_calls(VERIFY) == before + 1  # the answer was read, and refused
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "key_store_unavailable"


def test_a_null_verification_is_an_unknown_key_refused_at_once_and_remembered(
    trusting_nothing: Gateway, supabase: FakeSupabase
) -> None:
    key, before = new_key(), supabase.rpc_calls(VERIFY)
    with supabase.answer_with(200, b"null"):
        statuses = [chat(trusting_nothing, key).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert supabase.rpc_calls(VERIFY) == before + 1  # refused keys are remembered briefly


def verification(**fields: object) -> bytes:
    """cloudgpt_verify_api_key_with_controls's answer for a key without controls, with `fields` changed."""
    flat = {
        "id": KEY_ID, "name": "n", "prefix": "cgpt_abcd...", "created": 1764108000, "last_used": None,
        "expires": None, "disabled": False, "models": None, "limit_chat": None, "limit_image": None,
        "limit_video": None, "quota_period": None, "quota_requests": None, "quota_tokens": None,
        "version": 1, "user_id": USER.upper(),
    }  # fmt: skip
    return json.dumps(flat | fields).encode()


def test_a_well_formed_verification_is_the_key(trusting_nothing: Gateway, supabase: FakeSupabase) -> None:
    with supabase.answer_with(200, verification()):
        response = chat(trusting_nothing, new_key())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/keys", b'{"id": "key_x"}'),
        ("GET", "/api/keys", b'[{"id": 1}]'),
        ("POST", "/api/keys", b'"soon"'),
        ("DELETE", "/api/keys/" + KEY_ID, b'"yes"'),
    ],
)
def test_odd_answers_to_key_management_are_503s(
    trusting_nothing: Gateway, supabase: FakeSupabase, method: str, path: str, body: bytes
) -> None:
    token = access_token(str(uuid.uuid4()), f"{supabase.url}/auth/v1")
    with supabase.answer_with(200, body):
        response = trusting_nothing.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "key_store_unavailable"


# Upstash


@pytest.mark.parametrize(
    "body",
    [
        b'[{"result": 0}, {"result": 1}]',
        b'[{"result": -4}, {"result": 1}]',
        b'[{"result": 2.5}, {"result": 1}]',
        b'[{"result": true}, {"result": 1}]',
        b'[{"result": null}, {"result": 1}]',
        b'[{"result": "MTA="}, {"result": 1}]',
        b'[{"result": 3}]',
        b"[]",
        b'{"result": 3}',
        b"null",
        b"",
    ],
)
def test_a_count_that_is_not_a_positive_integer_means_counters_unavailable(
    on_upstash: dict[str, Gateway], upstash: UpstashEmulator, body: bytes
) -> None:
    with upstash.answer_with(200, body):
        served = chat(on_upstash["open"])
    assert upstash.counts() == 1
    assert served.status_code == 200
    assert served.headers["X-RateLimit-Status"] == "unchecked"
    with upstash.answer_with(200, body):
        refused = chat(on_upstash["closed"])
    assert upstash.counts() == 2  # asked too, and did not trust the answer either
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "rate_limiter_unavailable"


def test_an_upstash_call_is_bounded_as_a_whole_and_the_breaker_stops_calling_it(
    start_gateway: Callable[..., Gateway], silent_url: str
) -> None:
    gateway = start_gateway(**upstash_env(silent_url, timeout=0.4), CLOUDGPT_BREAKER_COOLDOWN="60")
    chat(gateway)  # the process's first request also imports the client: not what is timed
    timings = []
    for _ in range(8):
        started = time.monotonic()
        response = chat(gateway)
        timings.append(time.monotonic() - started)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Status"] == "unchecked"
    waited, skipped = timings[:2], timings[2:]  # failures 2 and 3 waited; then the breaker is open
    assert all(0.35 < t < 0.4 + 0.35 for t in waited), timings
    assert all(t < 0.2 for t in skipped), timings


def test_counting_resumes_within_the_cool_down_once_upstash_answers(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), CLOUDGPT_BREAKER_COOLDOWN="0.5")
    with upstash.answer_with(503, b'{"error":"ERR service unavailable"}'):
        statuses = [chat(gateway).headers.get("X-RateLimit-Status") for _ in range(6)]
    assert statuses == ["unchecked"] * 6
    assert upstash.counts() == 3  # three failures in a row, then no more calls
    time.sleep(0.55)
    response = chat(gateway)
    assert "X-RateLimit-Status" not in response.headers
    assert response.headers["X-RateLimit-Remaining"] == "9"


def test_once_the_breaker_opens_neither_counters_nor_usage_records_wait_on_upstash(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), CLOUDGPT_BREAKER_COOLDOWN="60")
    with upstash.answer_with(503, b'{"error":"ERR service unavailable"}'):
        for _ in range(6):
            assert chat(gateway).headers["X-RateLimit-Status"] == "unchecked"
        time.sleep(0.3)  # usage records are written in the background, 20 ms after they come
        asked = upstash.requests
        assert 3 <= asked <= 4  # three failures open it (a usage write may have been in flight)
        for _ in range(6):
            assert chat(gateway).status_code == 200
        time.sleep(0.3)
        assert upstash.requests == asked  # no count and no usage record was sent


def test_a_caller_over_its_limit_is_refused_from_memory_without_asking_upstash(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    from tests.test_limits import inside_one_window

    # One worker: each worker process is an instance with a memory of its own.
    gateway = start_gateway(
        ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"),
        **upstash_env(upstash.url),
        RATE_LIMIT_CHAT_ANONYMOUS="3",
    )
    inside_one_window(5)
    responses = [chat(gateway) for _ in range(10)]
    assert [r.status_code for r in responses] == [200] * 3 + [429] * 7
    with upstash.connection() as redis:
        (counter,) = redis.call("KEYS", "cgpt:rl:chat:*")
        counted = int(redis.call("GET", counter))
    assert counted == 4  # three admitted, one refused: the rest from memory, never counted
    last = responses[-1]
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(last.headers["Retry-After"]) <= 60


# The key store: breaker and stale keys


def test_during_a_supabase_outage_a_recently_verified_key_keeps_working(
    supabase: FakeSupabase, start_gateway: Callable[..., Gateway], postgres: Postgres
) -> None:
    gateway = start_gateway(
        **store_env("supabase", supabase), CLOUDGPT_KEY_CACHE_SECONDS="0", CLOUDGPT_BREAKER_COOLDOWN="60"
    )
    known, unseen = issue(gateway, supabase, postgres), issue(gateway, supabase, postgres)
    assert chat(gateway, known).status_code == 200
    before = supabase.rpc_calls(VERIFY)
    with supabase.answer_with(*OUTAGE):
        statuses = [chat(gateway, known).status_code for _ in range(5)]
        refused = chat(gateway, unseen)
    assert statuses == [200] * 5
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "key_store_unavailable"
    assert supabase.rpc_calls(VERIFY) == before + 3  # then the breaker stopped asking


def test_without_stale_keys_an_outage_refuses_every_key(
    supabase: FakeSupabase, start_gateway: Callable[..., Gateway], postgres: Postgres
) -> None:
    gateway = start_gateway(
        **store_env("supabase", supabase), CLOUDGPT_KEY_CACHE_SECONDS="0", CLOUDGPT_KEY_STALE_SECONDS="0"
    )
    key = issue(gateway, supabase, postgres)
    assert chat(gateway, key).status_code == 200
    with supabase.answer_with(*OUTAGE):
        response = chat(gateway, key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "key_store_unavailable"
