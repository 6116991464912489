"""Per-minute limits, the same on both backends: exact under concurrency, honest headers, clean windows.

Every test taking `backend` runs once on the embedded SQLite counters and once on
Upstash (the REST emulator in front of a real redis-server).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx

from lib.counters import Add, Get, Mark, Seen, counters
from lib.counters.sqlite import SqliteCounters
from lib.settings import load as settings_from
from tests.conftest import AS_ON_VERCEL
from tests.fakes.upstash import UpstashEmulator
from tests.upstash_fixtures import upstash_env

BODY = {"model": "openai", "messages": [{"role": "user", "content": "count me"}]}


def inside_one_window(needed: float = 10.0) -> None:
    """Wait, if need be, so the next `needed` seconds fall inside one UTC minute."""
    into = time.time() % 60
    if into > 60 - needed:
        time.sleep(60 - into + 0.05)


def burst(url: str, n: int, headers: dict[str, str] | None = None) -> list[tuple[int, dict[str, str], str]]:
    """`n` chat requests released at once, each on its own connection: (status, headers, body).

    Headers come as a plain dict (it crosses process boundaries), names in lower case.
    """
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[int, dict[str, str], str]:
        with httpx.Client(base_url=url, timeout=30) as client:
            barrier.wait()
            response = client.post("/api/chat", json=BODY, headers=headers)
            return response.status_code, dict(response.headers), response.text

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_limits_stay_exact_across_the_local_servers_worker_processes(start_gateway) -> None:
    # Three worker processes, each with its own connection to the shared SQLite counters.
    gateway = start_gateway(("-m", "lib.devserver", "--port", "{port}", "--workers", "3"))
    inside_one_window()
    statuses = sorted(status for status, _, _ in burst(gateway.url, 30))
    assert statuses == [200] * 10 + [429] * 20


def test_thirty_concurrent_anonymous_requests_admit_exactly_ten(start_gateway, backend) -> None:
    gateway = start_gateway(**backend)
    inside_one_window()
    responses = burst(gateway.url, 30)
    ok = [headers for status, headers, _ in responses if status == 200]
    refused = [(headers, body) for status, headers, body in responses if status == 429]
    assert (len(ok), len(refused)) == (10, 20), responses
    assert sorted(int(headers["x-ratelimit-remaining"]) for headers in ok) == list(range(10))
    for headers, body in refused:
        assert '"code":"rate_limit_exceeded"' in body
        assert headers["x-ratelimit-remaining"] == "0"
        assert headers["x-ratelimit-limit"] == "10"
        assert 1 <= int(headers["retry-after"]) <= 60


def test_headers_count_down_and_reset_at_the_next_minute(start_gateway, backend) -> None:
    gateway = start_gateway(**backend, RATE_LIMIT_CHAT_ANONYMOUS="3")
    inside_one_window()
    seen = []
    for _ in range(4):
        before = time.time()
        response = gateway.client.post("/api/chat", json=BODY)
        seen.append((response.status_code, response.headers["X-RateLimit-Remaining"]))
        reset = int(response.headers["X-RateLimit-Reset"])
        assert reset % 60 == 0 and before < reset <= before + 60
        assert "X-RateLimit-Status" not in response.headers
    assert seen == [(200, "2"), (200, "1"), (200, "0"), (429, "0")]
    assert int(response.headers["Retry-After"]) == max(1, -(-(reset - time.time()) // 1))


def test_a_spoofed_forwarded_for_does_not_escape_the_limit(start_gateway, backend) -> None:
    gateway = start_gateway(**backend, RATE_LIMIT_CHAT_ANONYMOUS="2")
    inside_one_window()
    statuses = [
        gateway.client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def test_models_listings_are_not_rate_limited(start_gateway, backend) -> None:
    gateway = start_gateway(**backend, RATE_LIMIT_CHAT_ANONYMOUS="1")
    assert {gateway.client.get("/api/models/chat").status_code for _ in range(5)} == {200}


def _client_process(url: str, n: int) -> list[tuple[int, dict[str, str], str]]:
    return burst(url, n)


def test_four_instances_under_fifty_concurrent_requests_each_admit_exactly_sixty(
    start_gateway, backend, tmp_path: Path
) -> None:
    # Four gateway processes share one store (one Upstash, or one disk for SQLite), as
    # instances do; four client processes send 50 requests each at once. A store that
    # fails refuses (closed mode) rather than admitting unchecked, so a slow moment on
    # this small machine cannot pass for a lost count.
    env = {
        **backend,
        "CLOUDGPT_DATA_DIR": str(tmp_path),
        "RATE_LIMIT_CHAT_ANONYMOUS": "60",
        "RATE_LIMIT_FAILURE_MODE": "closed",
    }
    gateways = [start_gateway(**env) for _ in range(4)]
    inside_one_window(20)
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [r for rs in pool.map(burst, [g.url for g in gateways], [50] * 4) for r in rs]
    statuses = [status for status, _, _ in results]
    assert (statuses.count(200), statuses.count(429)) == (60, 140), sorted(statuses)
    remaining = sorted(
        int(headers["x-ratelimit-remaining"]) for status, headers, _ in results if status == 200
    )
    assert remaining == list(range(60))


def test_the_next_minute_admits_again_on_both_backends(start_gateway, upstash: UpstashEmulator) -> None:
    # Both backends in one test, so the wait for the window's end is paid once.
    gateways = [
        start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="1"),
        start_gateway(**upstash_env(upstash.url), RATE_LIMIT_CHAT_ANONYMOUS="1"),
    ]
    inside_one_window()
    resets = set()
    for gateway in gateways:
        first, second = (gateway.client.post("/api/chat", json=BODY) for _ in range(2))
        assert (first.status_code, second.status_code) == (200, 429)
        resets.add(int(second.headers["X-RateLimit-Reset"]))
    (reset,) = resets
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    for gateway in gateways:
        response = gateway.client.post("/api/chat", json=BODY)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset"] == str(reset + 60)


def test_upstash_keys_are_namespaced_and_expire_by_themselves(
    start_gateway, upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url))
    inside_one_window()
    reset = int(gateway.client.post("/api/chat", json=BODY).headers["X-RateLimit-Reset"])
    with upstash.connection() as redis:
        keys = redis.call("KEYS", "cgpt:rl:*")  # beside the usage records (cgpt:usage:*)
        assert keys == [f"cgpt:rl:chat:anonymous:127.0.0.1:{reset - 60}".encode()]
        assert redis.call("GET", keys[0]) == b"1"
        assert 60 <= redis.call("TTL", keys[0]) <= 120  # outlives its window, then goes


def test_each_request_is_one_round_trip_to_upstash_and_the_usage_records_at_most_one_more(
    start_gateway, upstash: UpstashEmulator
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), RATE_LIMIT_CHAT_ANONYMOUS="100000")
    time.sleep(0.3)  # a record an earlier test's gateway was still writing has landed
    before = upstash.requests
    for _ in range(20):
        assert gateway.client.post("/api/chat", json=BODY).status_code == 200
    with upstash.connection() as redis:
        (counter,) = redis.call("KEYS", "cgpt:rl:chat:*")
        assert int(redis.call("GET", counter)) == 20  # one INCR, so one round trip, per request
    seen, deadline = -1, time.monotonic() + 10  # the records are written after the answers
    while seen != upstash.requests and time.monotonic() < deadline:
        seen = upstash.requests
        time.sleep(0.3)
    # The records go out after the answers, several together when they wait for the writer.
    assert 20 + 1 <= upstash.requests - before <= 20 + 20


def test_on_vercel_without_upstash_the_limiter_refuses_loudly(start_gateway) -> None:
    gateway = start_gateway(AS_ON_VERCEL, VERCEL="1")
    response = gateway.client.post("/api/chat", json=BODY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limiter_not_configured"


def _hammer(path: str, threads: int) -> list[int]:
    counters = SqliteCounters(Path(path))
    barrier = threading.Barrier(threads)

    def one(_: int) -> int:
        barrier.wait()
        return counters.hit("chat:anonymous:127.0.0.1", 1_800_000_000)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(threads)))


def test_sqlite_counts_are_exact_across_processes_and_threads(tmp_path: Path) -> None:
    path = str(tmp_path / "limits.sqlite3")
    SqliteCounters(Path(path))  # schema first, so the workers only race on counting
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [count for counts in pool.map(_hammer, [path] * 4, [50] * 4) for count in counts]
    # Every hit saw a distinct count: none was lost or doubled, so any limit admits exactly itself.
    assert sorted(results) == list(range(1, 201))


def test_sqlite_counts_start_again_once_expired_and_expired_rows_are_swept(tmp_path: Path) -> None:
    counters = SqliteCounters(tmp_path / "limits.sqlite3")
    assert [counters.hit("b", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.hit("b", 120) == 1
    assert counters.run([Add("gone", 1, ttl=0), Add("gone", 1, ttl=0)]) == [1, 1]  # past its lifetime
    counters._swept = 0  # as if a minute had passed
    assert counters.run([Get("gone")]) == [0]
    keys = [key for (key,) in counters._connection.execute("SELECT key FROM tallies ORDER BY key")]
    assert keys == ["cgpt:rl:b:120", "cgpt:rl:b:60"]


def test_a_marker_is_only_ever_raised(tmp_path: Path, backend: dict[str, str]) -> None:
    """Two changes' marker writes may arrive in either order: the higher version stays."""
    current = settings_from(backend | {"CLOUDGPT_DATA_DIR": str(tmp_path)})
    store = counters(current)
    assert store.run([Seen("cgpt:key:m"), Mark("cgpt:key:m", 3, 60), Mark("cgpt:key:m", 2, 60)]) == [
        0,
        None,
        None,
    ]
    assert store.run([Seen("cgpt:key:m")]) == [3]
