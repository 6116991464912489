"""The functions as `vercel build` bundles them, served by Vercel's own Python runtime.

The closest the suite comes to a deployment: each function's bundle is laid out
from its `.vc-config.json` (see tests/vercel_runtime.py) and started through
`vc__handler__python`, whose `vc_init` builds the WSGI environ from the request as
the platform forwards it. Around them, what a deployment talks to: Upstash's REST
API (emulated, on a real redis-server), Supabase (emulated, on a real PostgreSQL)
and a fake Pollinations. Requests carry the headers Vercel's proxy adds, and a
`[id]` function gets its path segment as query `id`, as Vercel's router passes it.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import UNLIMITED, assert_first_chunk_arrives_before_the_rest
from tests.conftest import UPSTREAM_KEY
from tests.fakes import files
from tests.fakes.pollinations import FakePollinations
from tests.fakes.supabase import FakeSupabase
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET, access_token
from tests.postgres import Postgres
from tests.upstash_fixtures import upstash_env
from tests.vercel_runtime import CACHE, Unavailable, VercelFunction, background_build, lay_out

ROUTES = ("api/chat", "api/image", "api/keys/index", "api/keys/[id]")


@pytest.fixture(scope="module")
def output() -> Path:
    """`vercel build`'s output for the project as it is (cached under .cache/ while nothing changes)."""
    try:
        return background_build().result()
    except Unavailable as missing:
        pytest.skip(f"vercel build cannot run here: {missing}")


@pytest.fixture(scope="module")
def platform_env(
    upstream: FakePollinations, upstash_emulator: UpstashEmulator, supabase: FakeSupabase
) -> dict[str, str]:
    """The project's environment variables on Vercel, pointed at the fakes."""
    upstash_emulator.reset()  # no delay or odd answer left by an earlier test
    return {
        "VERCEL": "1",  # as on the platform: Upstash and Supabase are required, client IPs come from headers
        "POLLINATIONS_BASE_URL": upstream.url,
        "POLLINATIONS_API_KEY": UPSTREAM_KEY,
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        **upstash_env(upstash_emulator.url),
        **UNLIMITED,
    }


@pytest.fixture(scope="module")
def functions(output: Path, platform_env: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    """A client per function, each function running in its own `vc_init` process."""
    CACHE.mkdir(exist_ok=True)
    bundles = Path(tempfile.mkdtemp(prefix="bundles-", dir=CACHE))  # beside the build: hard links work
    running = {
        route: VercelFunction.bundled(*_bundle(output, route, bundles), platform_env) for route in ROUTES
    }
    clients = {route: httpx.Client(base_url=function.url, timeout=30) for route, function in running.items()}
    yield clients
    for route, function in running.items():
        clients[route].close()
        function.stop()
    shutil.rmtree(bundles, ignore_errors=True)


def _bundle(output: Path, route: str, bundles: Path) -> tuple[Path, dict]:
    bundle = bundles / route
    return bundle, lay_out(output, route, bundle)


def vercel_headers(client_ip: str) -> dict[str, str]:
    """What Vercel's proxy adds to a request from `client_ip` before it reaches a function."""
    return {
        "x-forwarded-for": client_ip,
        "x-real-ip": client_ip,
        "x-forwarded-proto": "https",
        "x-forwarded-host": "cloudgpt.example",
        "x-vercel-id": "fra1::" + secrets.token_hex(8),
    }


def a_client_ip(network: str = "203.0.113") -> str:
    """A documentation address (TEST-NET-3 unless told) for a request from the internet."""
    return f"{network}.{secrets.randbelow(254) + 1}"


def test_chat_answers_json_in_vercels_runtime(functions: dict[str, httpx.Client]) -> None:
    body = {"model": "openai", "messages": [{"role": "user", "content": "hello from vc_init"}]}
    response = functions["api/chat"].post("/api/chat", json=body, headers=vercel_headers(a_client_ip()))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    assert response.json()["choices"][0]["message"]["content"] == "echo: hello from vc_init"


def test_chat_stream_arrives_as_it_is_produced(
    functions: dict[str, httpx.Client], upstream: FakePollinations
) -> None:
    # The fake sends one chunk, then holds the rest until the gate opens (or 10 s pass):
    # the first chunk arrives early only if the runtime flushes each chunk it is given.
    gate = upstream.gate("vercel-runtime")
    body = {
        "model": "openai",
        "messages": [{"role": "user", "content": "gate:vercel-runtime"}],
        "stream": True,
    }
    assert_first_chunk_arrives_before_the_rest(
        functions["api/chat"], gate, json=body, headers=vercel_headers(a_client_ip())
    )


def test_image_answers_the_providers_bytes(functions: dict[str, httpx.Client]) -> None:
    response = functions["api/image"].post(
        "/api/image", json={"prompt": "a lighthouse", "model": "flux"}, headers=vercel_headers(a_client_ip())
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert response.content == files.png(4, 3)


def test_key_is_revoked_by_its_id_passed_as_query_id(
    functions: dict[str, httpx.Client], postgres: Postgres, supabase: FakeSupabase
) -> None:
    token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
    auth = {"Authorization": f"Bearer {token}", **vercel_headers(a_client_ip())}
    keys = functions["api/keys/index"]
    created = keys.post("/api/keys", json={"name": "deploy"}, headers=auth)
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]

    # Vercel's router hands /api/keys/<id> to api/keys/[id].py with the segment as query `id`.
    deleted = functions["api/keys/[id]"].delete(f"/api/keys/{key_id}?id={key_id}", headers=auth)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": True, "id": key_id}
    assert keys.get("/api/keys", headers=auth).json()["data"] == []
    again = functions["api/keys/[id]"].delete(f"/api/keys/{key_id}?id={key_id}", headers=auth)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "key_not_found"


def test_anonymous_callers_are_counted_by_the_ip_vercels_headers_give(
    functions: dict[str, httpx.Client],
) -> None:
    # vc_init makes REMOTE_ADDR the x-forwarded-for header as sent; the platform sets
    # it and x-real-ip to the client's address, so two clients are two budgets. Which
    # header wins when a client sends its own is lib/identity.py's rule, not checked
    # here: this holds for any rule that takes the address from Vercel's headers.
    body = {"model": "openai", "messages": [{"role": "user", "content": "count me"}]}
    chat = functions["api/chat"]
    first_ip, second_ip = a_client_ip("198.51.100"), a_client_ip("198.51.100")  # no other test's
    while second_ip == first_ip:
        second_ip = a_client_ip("198.51.100")

    def remaining(client_ip: str) -> int:
        response = chat.post("/api/chat", json=body, headers=vercel_headers(client_ip))
        assert response.status_code == 200, response.text
        return int(response.headers["X-RateLimit-Remaining"])

    limit = int(UNLIMITED["RATE_LIMIT_CHAT_ANONYMOUS"])
    assert [remaining(first_ip), remaining(first_ip), remaining(second_ip)] == [
        limit - 1,
        limit - 2,
        limit - 1,
    ]


def test_vc_init_reports_the_functions_import_time(output: Path) -> None:
    # The benchmark reads `userInitDuration` from the runtime's `server-started` message.
    bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=CACHE))
    try:
        function = VercelFunction.bundled(bundle, lay_out(output, "api/models/index", bundle), {})
        try:
            assert function.server_started["httpPort"] > 0
            assert 0 <= function.user_init_ms <= function.server_started["initDuration"]
            assert httpx.get(f"{function.url}/_vercel/ping").status_code == 200
        finally:
            function.stop()
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def test_concurrent_first_requests_each_get_their_answer(output: Path, platform_env: dict[str, str]) -> None:
    # vc_init serves requests in threads: on a fresh instance, several first requests
    # race to import the request models and the adapter and to build the validator.
    bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=CACHE))
    function = VercelFunction.bundled(bundle, lay_out(output, "api/chat", bundle), platform_env)

    def ask(n: int) -> str:
        body = {"model": "openai", "messages": [{"role": "user", "content": f"first {n}"}]}
        response = httpx.post(
            f"{function.url}/api/chat", json=body, headers=vercel_headers(a_client_ip()), timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    try:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ask, range(8))) == [f"echo: first {n}" for n in range(8)]
    finally:
        function.stop()
        shutil.rmtree(bundle, ignore_errors=True)


def test_a_fresh_function_answers_a_keyed_chat_as_its_first_request(
    output: Path,
    platform_env: dict[str, str],
    functions: dict[str, httpx.Client],
    postgres: Postgres,
    supabase: FakeSupabase,
) -> None:
    # Production settings and a process that has answered nothing yet: its first request
    # carries an API key, so it opens the key store, the counters and the usage records
    # cold, then asks the provider (bench/cold_start.py times this very path).
    token = access_token(postgres.new_user(), f"{supabase.url}/auth/v1")
    created = functions["api/keys/index"].post(
        "/api/keys",
        json={"name": "cold"},
        headers={"Authorization": f"Bearer {token}", **vercel_headers(a_client_ip())},
    )
    assert created.status_code == 201, created.text
    bundle = Path(tempfile.mkdtemp(prefix="bundle-", dir=CACHE))
    function = VercelFunction.bundled(bundle, lay_out(output, "api/chat", bundle), platform_env)
    try:
        body = {"model": "openai", "messages": [{"role": "user", "content": "first, with a key"}]}
        auth = {"Authorization": f"Bearer {created.json()['key']}", **vercel_headers(a_client_ip())}
        response = function.client.post("/api/chat", json=body, headers=auth)

        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "echo: first, with a key"
        limit = UNLIMITED["RATE_LIMIT_CHAT_AUTHENTICATED"]  # the key's owner's budget, not the address's
        assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]) == (
            limit,
            str(int(limit) - 1),
        )
    finally:
        function.stop()
        shutil.rmtree(bundle, ignore_errors=True)
