"""GET /api/health costs the stores little whoever calls it, and names what is wrong with the key store."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Gateway, refused_port
from tests.fakes.supabase import FakeSupabase, error_body
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET
from tests.test_check import line, run_check
from tests.test_limits import inside_one_window
from tests.upstash_fixtures import upstash_env

ONE_WORKER = ("-m", "lib.devserver", "--port", "{port}", "--workers", "1")  # one instance


@pytest.fixture(scope="module")
def stores_gateway(
    start_module_gateway: Callable[..., Gateway], supabase: FakeSupabase, upstash_emulator: UpstashEmulator
) -> Gateway:
    return start_module_gateway(
        ONE_WORKER,
        SUPABASE_URL=supabase.url,
        SUPABASE_SERVICE_ROLE_KEY=supabase.service_role_key,
        SUPABASE_ANON_KEY=supabase.anon_key,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        **upstash_env(upstash_emulator.url),
    )


def from_address(gateway: Gateway, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=gateway.url, transport=transport, timeout=30)


def test_many_calls_cost_each_store_one_read(
    stores_gateway: Gateway, supabase: FakeSupabase, upstash_emulator: UpstashEmulator
) -> None:
    upstash_emulator.reset()
    lists, verifies = (
        supabase.rpc_calls("cloudgpt_list_api_keys"),
        supabase.rpc_calls("cloudgpt_verify_api_key"),
    )
    started = time.monotonic()
    with from_address(stores_gateway, "127.0.0.2") as client:
        answers = [client.get("/api/health") for _ in range(20)]
    took = time.monotonic() - started
    assert {answer.status_code for answer in answers} == {200}
    probes = len({answer.json()["checkedAt"] for answer in answers})
    assert probes <= 1 + took // 5  # probed again only once the last probe is 5 s old
    # A read of each store per probe: no key verified (it may write), no count raised.
    assert supabase.rpc_calls("cloudgpt_list_api_keys") - lists == probes
    assert supabase.rpc_calls("cloudgpt_verify_api_key") == verifies
    requests = [[command[0] for command in json.loads(body)] for body in upstash_emulator.bodies]
    assert requests == [["GET"]] * probes  # one request of one read per probe


def test_one_address_gets_thirty_answers_a_minute_and_others_still_get_theirs(
    stores_gateway: Gateway,
) -> None:
    inside_one_window(15)
    with from_address(stores_gateway, "127.0.0.3") as client:
        statuses = [client.get("/api/health").status_code for _ in range(30)]
        refused = client.get("/api/health")
    assert statuses == [200] * 30
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with from_address(stores_gateway, "127.0.0.4") as client:
        assert client.get("/api/health").status_code == 200


# What PostgREST answers for a function that is not in the database: migrations not applied.
NO_FUNCTION = error_body(
    "PGRST202", "Could not find the function public.cloudgpt_list_api_keys(p_user_id) in the schema cache"
)


@pytest.mark.parametrize(
    ("problem", "settings", "advice"),
    [
        ("functions_missing", {}, "its SQL functions are missing: apply supabase/migrations (docs/deploy.md)"),
        ("wrong_key", {"SUPABASE_SERVICE_ROLE_KEY": "not-the-projects-key"},
         "it refused the project key (401): check SUPABASE_SECRET_KEY"),
        ("unreachable", {"SUPABASE_URL": f"http://127.0.0.1:{refused_port()}"},
         "no answer in time: check SUPABASE_URL, and that the project is not paused"),
    ],
)  # fmt: skip
def test_each_key_store_failure_is_named_and_so_is_the_missing_publishable_key(
    start_gateway: Callable[..., Gateway],
    supabase: FakeSupabase,
    problem: str,
    settings: dict[str, str],
    advice: str,
) -> None:
    env = {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        **settings,
    }  # and no publishable (anon) key: the pages cannot sign anyone in
    gateway = start_gateway(**env)
    answer = (404, json.dumps(NO_FUNCTION).encode()) if problem == "functions_missing" else None
    with supabase.answer_with(*answer) if answer else contextlib.nullcontext():
        report = gateway.client.get("/api/health").json()
        status, lines = run_check(gateway.url)
    assert report["keyStore"] == {
        "backend": "supabase",
        "reachable": False,
        "roundTripMs": None,
        "error": "key_store_unavailable",
        "problem": problem,
    }
    assert report["missing"] == ["MAPLEAI_API_KEY", "SUPABASE_PUBLISHABLE_KEY"]
    assert status == 1
    assert line(lines, "FAIL  key store") == (
        f"FAIL  key store: supabase, not usable (key_store_unavailable): {advice}"
    )
    assert line(lines, "warn  configuration") == (
        "warn  configuration (on local): missing MAPLEAI_API_KEY, SUPABASE_PUBLISHABLE_KEY"
    )
