"""When the counters cannot be used, RATE_LIMIT_FAILURE_MODE decides, and quickly.

Upstash down (nothing listening), hanging (accepts, never answers), or answering
errors (a wrong token, an error reply, a proxy's error page); SQLite on a data
directory that cannot be used. `open` serves the request and marks it
`X-RateLimit-Status: unchecked`; `closed` answers 503 `rate_limiter_unavailable`.
Either way the answer comes within a bounded time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import httpx
import pytest

from tests.conftest import refused_port
from tests.fakes.upstash import UpstashEmulator
from tests.upstash_fixtures import upstash_env

BODY = {"model": "openai", "messages": [{"role": "user", "content": "count me"}]}
TIMEOUT = 0.3  # UPSTASH_REDIS_TIMEOUT in these tests
BOUND = 1.5  # seconds a request may take when the counters fail: the timeout plus the gateway's own work

# A failure sets itself up: the gateway's variables, and a block during which it lasts.
Failure = Callable[[pytest.FixtureRequest], tuple[dict[str, str], AbstractContextManager[None]]]


def _down(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    return upstash_env(f"http://127.0.0.1:{refused_port()}"), nullcontext()


def _hanging(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    return upstash_env(request.getfixturevalue("silent_url")), nullcontext()


def _wrong_token(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    return upstash_env(request.getfixturevalue("upstash").url, token="not-the-token"), nullcontext()


def _error_reply(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    upstash: UpstashEmulator = request.getfixturevalue("upstash")
    reply = b'{"error":"ERR max daily request limit exceeded"}'
    return upstash_env(upstash.url), upstash.answer_with(400, reply)


def _error_page(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    upstash: UpstashEmulator = request.getfixturevalue("upstash")
    return upstash_env(upstash.url), upstash.answer_with(502, b"<html>502 Bad Gateway</html>", "text/html")


def _sqlite_unusable(request: pytest.FixtureRequest) -> tuple[dict[str, str], AbstractContextManager[None]]:
    blocker: Path = request.getfixturevalue("tmp_path") / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    return {"CLOUDGPT_DATA_DIR": str(blocker)}, nullcontext()


FAILURES: dict[str, Failure] = {
    "upstash_down": _down,
    "upstash_hanging": _hanging,
    "upstash_wrong_token": _wrong_token,
    "upstash_error_reply": _error_reply,
    "upstash_error_page": _error_page,
    "sqlite_unusable": _sqlite_unusable,
}


def timed_posts(client: httpx.Client, n: int) -> list[tuple[httpx.Response, float]]:
    results = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post("/api/chat", json=BODY)
        results.append((response, time.perf_counter() - started))
    return results


@pytest.mark.parametrize("failure", FAILURES)
def test_open_mode_serves_unchecked_and_says_so(start_gateway, request, failure: str) -> None:
    env, failing = FAILURES[failure](request)
    gateway = start_gateway(**env | {"UPSTASH_REDIS_TIMEOUT": str(TIMEOUT)})  # open is the default
    with failing:
        results = timed_posts(gateway.client, 3)
    for response, elapsed in results:
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Status"] == "unchecked"
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert int(response.headers["X-RateLimit-Reset"]) % 60 == 0
        assert "X-RateLimit-Remaining" not in response.headers
        assert elapsed < BOUND, elapsed
        if failure == "upstash_hanging":
            assert elapsed >= TIMEOUT  # it did wait on the silent server, and no longer than bounded
    gateway.log.seek(0)
    assert b"chat requests served unchecked: rate-limit counters unavailable" in gateway.log.read()


@pytest.mark.parametrize("failure", FAILURES)
def test_closed_mode_refuses_with_a_503(start_gateway, request, failure: str) -> None:
    env, failing = FAILURES[failure](request)
    gateway = start_gateway(**env | {"UPSTASH_REDIS_TIMEOUT": str(TIMEOUT)}, RATE_LIMIT_FAILURE_MODE="closed")
    with failing:
        results = timed_posts(gateway.client, 3)
    for response, elapsed in results:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "rate_limiter_unavailable"
        assert "X-RateLimit-Status" not in response.headers
        assert elapsed < BOUND, elapsed


def test_counting_resumes_when_upstash_answers_again(start_gateway, upstash: UpstashEmulator) -> None:
    gateway = start_gateway(**upstash_env(upstash.url), RATE_LIMIT_CHAT_ANONYMOUS="3")
    with upstash.answer_with(503, b'{"error":"ERR service unavailable"}'):
        assert gateway.client.post("/api/chat", json=BODY).headers["X-RateLimit-Status"] == "unchecked"
    response = gateway.client.post("/api/chat", json=BODY)
    assert response.status_code == 200
    assert "X-RateLimit-Status" not in response.headers
    assert response.headers["X-RateLimit-Remaining"] == "2"  # the unchecked request was not counted
