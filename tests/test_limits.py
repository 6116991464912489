"""Per-minute limits on the embedded backend: exact under concurrency, honest headers."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx

from lib.limits import SqliteCounters
from tests.conftest import Gateway

BODY = {"model": "openai", "messages": [{"role": "user", "content": "count me"}]}


def inside_one_window(needed: float = 3.0) -> None:
    """Wait, if need be, so the next `needed` seconds fall inside one UTC minute."""
    into = time.time() % 60
    if into > 60 - needed:
        time.sleep(60 - into + 0.05)


def burst(gateway: Gateway, n: int, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    """`n` chat requests released at once, each on its own connection."""
    barrier = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            barrier.wait()
            return client.post("/api/chat", json=BODY, headers=headers)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_thirty_concurrent_anonymous_requests_admit_exactly_ten(start_gateway) -> None:
    gateway = start_gateway()
    inside_one_window()
    responses = burst(gateway, 30)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert (len(ok), len(refused)) == (10, 20), [(r.status_code, r.text) for r in responses]
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok) == list(range(10))
    for response in refused:
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_headers_count_down_and_reset_at_the_next_minute(start_gateway) -> None:
    gateway = start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="3")
    inside_one_window()
    seen = []
    for _ in range(4):
        before = time.time()
        response = gateway.client.post("/api/chat", json=BODY)
        seen.append((response.status_code, response.headers["X-RateLimit-Remaining"]))
        reset = int(response.headers["X-RateLimit-Reset"])
        assert reset % 60 == 0 and before < reset <= before + 60
    assert seen == [(200, "2"), (200, "1"), (200, "0"), (429, "0")]


def test_a_spoofed_forwarded_for_does_not_escape_the_limit(start_gateway) -> None:
    gateway = start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="2")
    inside_one_window()
    statuses = [
        gateway.client.post("/api/chat", json=BODY, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def test_models_listings_are_not_rate_limited(start_gateway) -> None:
    gateway = start_gateway(RATE_LIMIT_CHAT_ANONYMOUS="1")
    assert {gateway.client.get("/api/models/chat").status_code for _ in range(5)} == {200}


def test_on_vercel_without_upstash_the_limiter_refuses_loudly(start_gateway) -> None:
    gateway = start_gateway(VERCEL="1")
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


def test_counts_are_exact_across_processes_and_threads(tmp_path: Path) -> None:
    path = str(tmp_path / "limits.sqlite3")
    SqliteCounters(Path(path))  # schema first, so the workers only race on counting
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [count for counts in pool.map(_hammer, [path] * 4, [50] * 4) for count in counts]
    # Every hit saw a distinct count: none was lost or doubled, so any limit admits exactly itself.
    assert sorted(results) == list(range(1, 201))


def test_a_new_window_starts_from_zero_and_old_windows_are_dropped(tmp_path: Path) -> None:
    counters = SqliteCounters(tmp_path / "limits.sqlite3")
    assert [counters.hit("b", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.hit("b", 120) == 1
    assert counters.hit("other", 120) == 1
    rows = counters._connection.execute(
        "SELECT bucket, window, count FROM counters ORDER BY bucket"
    ).fetchall()
    assert rows == [("b", 120, 1), ("other", 120, 1)]


def test_an_unusable_counter_store_is_a_503_not_a_500(start_gateway, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(blocker))
    response = gateway.client.post("/api/chat", json=BODY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limiter_unavailable"
