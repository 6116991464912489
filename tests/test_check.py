"""The smoke check (`python -m lib.check`) and GET /api/health, against the local server in both modes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.conftest import AS_ON_VERCEL, ROOT, UPSTREAM_KEY, Gateway, refused_port
from tests.fakes.pollinations import FakePollinations
from tests.fakes.server import FakeHandler, LoopbackFake
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET, access_token, store_env
from tests.postgres import Postgres
from tests.upstash_fixtures import UPSTASH_TOKEN, upstash_env


def run_check(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "lib.check", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stderr == ""
    return done.returncode, done.stdout.splitlines()


def line(lines: list[str], start: str) -> str:
    """The one output line starting with `start`."""
    found = [text for text in lines if text.startswith(start)]
    assert len(found) == 1, lines
    return found[0]


def test_the_check_of_a_local_server_reports_every_part_working(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway()
    status, lines = run_check(gateway.url)
    assert status == 0, lines
    assert lines[0] == f"CloudGPT smoke check of {gateway.url}"
    assert "models)" in line(lines, "ok    functions: GET /api/models answered 200")
    assert line(lines, "warn  configuration") == "warn  configuration (on local): missing MAPLEAI_API_KEY"
    assert "through pollinations" in line(lines, "ok    chat: openai answered 200")
    assert "limit 10/min, remaining 9" in line(lines, "ok    rate limit (anonymous)")
    assert line(lines, "ok    key store: sqlite, round trip").endswith(" ms from the function")
    assert line(lines, "ok    counters: sqlite, round trip")
    assert lines[-1] == "all good"


def test_the_check_of_supabase_and_upstash_reports_them_and_accepts_the_key(
    start_gateway: Callable[..., Gateway],
    supabase: FakeSupabase,
    postgres: Postgres,
    upstash: UpstashEmulator,
) -> None:
    env = store_env("supabase", supabase) | upstash_env(upstash.url)
    env |= {"MAPLEAI_API_KEY": "maple-key", "SUPABASE_ANON_KEY": supabase.anon_key}
    gateway = start_gateway(**env)
    token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
    key = gateway.client.post("/api/keys", headers={"Authorization": f"Bearer {token}"}).json()["key"]

    status, lines = run_check(gateway.url, "--key", key)
    assert status == 0, lines
    assert line(lines, "ok    configuration") == "ok    configuration (on local): nothing missing"
    assert line(lines, "ok    key store: supabase, round trip")
    assert line(lines, "ok    counters: upstash, round trip")
    assert "limit 100000/min, remaining 99999" in line(lines, "ok    rate limit (with the key)")
    assert line(lines, "ok    api key") == f"ok    api key {key[:9]}...: accepted; its user has 1 key"
    assert key not in "\n".join(lines)


def test_the_check_of_an_unconfigured_vercel_deployment_names_what_is_missing_and_fails(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(AS_ON_VERCEL, VERCEL="1", VERCEL_REGION="fra1")
    status, lines = run_check(gateway.url)
    assert status == 1
    assert line(lines, "warn  configuration") == (
        "warn  configuration (on vercel, region fra1): missing MAPLEAI_API_KEY, SUPABASE_URL, "
        "SUPABASE_SECRET_KEY, UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN"
    )
    assert line(lines, "FAIL  key store") == (
        "FAIL  key store: none configured, not usable (key_store_not_configured)"
    )
    assert line(lines, "FAIL  counters") == (
        "FAIL  counters: none configured, not usable (rate_limiter_not_configured)"
    )
    assert line(lines, "FAIL  chat").startswith("FAIL  chat: openai answered 503 rate_limiter_not_configured")
    assert lines[-1] == "4 checks failed"


def test_unreachable_counters_show_as_failed_and_the_chat_as_served_unchecked(
    start_gateway: Callable[..., Gateway], silent_url: str
) -> None:
    gateway = start_gateway(**upstash_env(silent_url, timeout=0.2))
    status, lines = run_check(gateway.url)
    assert status == 1
    assert line(lines, "FAIL  counters") == "FAIL  counters: upstash, not usable (rate_limiter_unavailable)"
    assert line(lines, "FAIL  rate limit") == (
        "FAIL  rate limit: 10/min, but the counters failed: served unchecked"
    )
    assert line(lines, "ok    key store: sqlite")


def test_the_check_of_nothing_listening_fails_in_one_line() -> None:
    url = f"http://127.0.0.1:{refused_port()}"
    status, lines = run_check(url)
    assert status == 1
    assert lines[1:] == [f"FAIL  functions: {url} cannot be reached (ConnectError)", "1 check failed"]


def test_health_answers_no_secret_and_says_which_provider_keys_are_set(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), SUPABASE_JWT_SECRET=JWT_SECRET)
    response = gateway.client.get("/api/health")
    assert response.status_code == 200
    health = response.json()
    for secret in (UPSTREAM_KEY, UPSTASH_TOKEN, JWT_SECRET):
        assert secret not in response.text
    assert health["providers"] == {"pollinations": {"apiKey": True}, "mapleai": {"apiKey": False}}
    assert health["accountTokens"] == {"jwtSecret": True, "jwks": False}
    assert health["counters"]["backend"] == "upstash"
    assert health["counters"]["roundTripMs"] > 0
    assert health["status"] == "ok"
    assert health["region"] is None


def test_a_key_the_deployment_does_not_know_fails_the_chat_and_key_lines(gateway: Gateway) -> None:
    unknown = "cgpt_" + "A" * 32
    status, lines = run_check(gateway.url, "--key", unknown)
    assert status == 1
    assert line(lines, "FAIL  chat").startswith("FAIL  chat: openai answered 401 invalid_api_key: ")
    assert line(lines, "FAIL  api key").startswith("FAIL  api key cgpt_AAAA...: GET /api/keys answered 401 ")
    assert unknown not in "\n".join(lines)


def test_a_server_that_is_not_cloudgpt_fails_the_first_line(upstream: FakePollinations) -> None:
    status, lines = run_check(upstream.url)
    assert status == 1
    assert lines[1:] == ["FAIL  functions: GET /api/models answered HTTP 404", "1 check failed"]


def test_a_deployments_strings_are_printed_with_their_control_characters_escaped() -> None:
    # The check prints what a deployment answers: a line break would forge a line of its own.
    message = "down\nok    all good\x1b[2J"
    envelope = {"error": {"message": message, "type": "server_error", "code": "x\ry", "param": None}}

    class Hostile(FakeHandler):
        def do_GET(self) -> None:
            self.send_json(503, envelope)

    with LoopbackFake(Hostile) as hostile:
        status, lines = run_check(hostile.url)
    assert status == 1
    assert lines[1:] == [
        "FAIL  functions: GET /api/models answered 503 x\\x0dy: down\\x0aok    all good\\x1b[2J",
        "1 check failed",
    ]
