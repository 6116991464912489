"""Usage records and GET /api/usage, on both backends (SQLite, and Upstash through its emulator).

Records are written after the answer was sent, by the server process's writer thread, so the
tests read them back with `eventually`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from lib.usage import today
from lib.usage.sqlite import SqliteUsage
from tests.conftest import ROOT, Gateway
from tests.fakes.openai_chat import STREAM_USAGE, USAGE
from tests.fakes.upstash import UpstashEmulator
from tests.key_stores import JWT_SECRET, access_token
from tests.test_chat import sse_events
from tests.test_limits import burst
from tests.upstash_fixtures import upstash_env

ZERO = dict.fromkeys(("requests", "errors", "promptTokens", "completionTokens", "images", "videoSeconds"), 0)


class Account:
    """A new user with an access token and one API key, on one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.user = str(uuid.uuid4())
        self.token = {"Authorization": f"Bearer {access_token(self.user)}"}
        self.key_id, key = self.new_key()
        self.auth = {"Authorization": f"Bearer {key}"}

    def new_key(self) -> tuple[str, str]:
        created = self.gateway.client.post("/api/keys", headers=self.token)
        assert created.status_code == 201, created.text
        return created.json()["id"], created.json()["key"]

    def chat(self, content: str = "hello", **fields: Any) -> httpx.Response:
        body = {"model": "openai", "messages": [{"role": "user", "content": content}], **fields}
        return self.gateway.client.post("/api/chat", json=body, headers=self.auth)

    def usage(self, query: str = "", credentials: dict[str, str] | None = None) -> httpx.Response:
        return self.gateway.client.get(f"/api/usage{query}", headers=credentials or self.token)


def eventually(read: Callable[[], Any], wanted: Callable[[Any], bool], seconds: float = 10.0) -> Any:
    """`read()` once it is what `wanted` accepts; the last value read otherwise, for the assertion."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if wanted(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def totals(account: Account, query: str = "", requests: int = 1) -> dict[str, Any]:
    """The usage answer, once it counts `requests` requests."""
    return eventually(lambda: account.usage(query).json(), lambda a: a["totals"]["requests"] >= requests)


@pytest.fixture(scope="module")
def usage_gateways(
    start_module_gateway: Callable[..., Gateway], upstash_emulator: UpstashEmulator
) -> dict[str, Gateway]:
    """One gateway per backend for the module: every test has its own user, so they never mix."""
    return {
        name: start_module_gateway(
            **env, SUPABASE_JWT_SECRET=JWT_SECRET, RATE_LIMIT_CHAT_AUTHENTICATED="1000"
        )
        for name, env in (("sqlite", {}), ("upstash", upstash_env(upstash_emulator.url)))
    }


@pytest.fixture
def usage_gateway(usage_gateways: dict[str, Gateway], backend: dict[str, str]) -> Gateway:
    return usage_gateways["upstash" if backend else "sqlite"]


def test_a_json_completion_records_the_providers_exact_tokens(usage_gateway: Gateway) -> None:
    account = Account(usage_gateway)
    assert account.chat().status_code == 200
    answer = totals(account)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert answer["object"] == "usage"
    assert answer["to"] == today
    assert answer["data"] == [
        {
            "date": today,
            "keyId": account.key_id,
            "model": "openai",
            "modality": "chat",
            **ZERO,
            "requests": 1,
            "promptTokens": USAGE["prompt_tokens"],
            "completionTokens": USAGE["completion_tokens"],
        }
    ]
    assert answer["totals"] == {key: value for key, value in answer["data"][0].items() if key in ZERO}


def _events(response: httpx.Response) -> list[Any]:
    """A stream's events, each parsed, `[DONE]` as it is."""
    return [data if data == "[DONE]" else json.loads(data) for data in sse_events(response.text)]


def test_a_stream_records_the_usage_chunks_tokens_and_forwards_it_only_when_asked(
    usage_gateway: Gateway,
) -> None:
    account = Account(usage_gateway)
    plain = account.chat(stream=True)
    asked = account.chat(stream=True, stream_options={"include_usage": True})
    assert (plain.status_code, asked.status_code) == (200, 200)
    plain_events, asked_events = _events(plain), _events(asked)
    assert plain_events[-1] == asked_events[-1] == "[DONE]"
    assert not [e for e in plain_events[:-1] if "usage" in e or e["choices"] == []]
    assert asked_events[-2] == {**asked_events[-2], "choices": [], "usage": STREAM_USAGE}
    answer = totals(account, requests=2)
    assert answer["totals"] == {
        **ZERO,
        "requests": 2,
        "promptTokens": 2 * STREAM_USAGE["prompt_tokens"],
        "completionTokens": 2 * STREAM_USAGE["completion_tokens"],
    }


def test_errors_after_the_limit_check_are_counted_and_refusals_before_it_are_not(
    start_gateway: Callable[..., Gateway], backend: dict[str, str]
) -> None:
    gateway = start_gateway(**backend, SUPABASE_JWT_SECRET=JWT_SECRET, RATE_LIMIT_CHAT_AUTHENTICATED="5")
    account = Account(gateway)
    assert account.chat(model="no-such-model").status_code == 400  # before a model is named
    assert account.chat("status:500").status_code == 502  # the provider failed
    broken = account.chat("errorevent", stream=True)  # failed after the first byte
    assert broken.status_code == 200 and "error" in _events(broken)[-1]
    assert account.chat().status_code == 200
    assert account.chat(messages=[]).status_code == 400  # the fifth request: a bad body
    assert account.chat().status_code == 429  # past the limit: not a request the gateway served
    bad_key = {"Authorization": "Bearer cgpt_not-a-key"}
    assert gateway.client.post("/api/chat", json={}, headers=bad_key).status_code == 401
    answer = totals(account, requests=5)
    time.sleep(0.3)  # a record the 429 or the 401 would have made has had time to land
    answer = account.usage().json()
    rows = {row["model"]: row for row in answer["data"]}
    assert rows[None] == {**rows[None], "requests": 2, "errors": 2, "promptTokens": 0}
    assert rows["openai"] == {**rows["openai"], "requests": 3, "errors": 2}
    assert answer["totals"]["requests"] == 5 and answer["totals"]["errors"] == 4


def test_images_and_video_seconds_delivered_are_recorded(usage_gateway: Gateway) -> None:
    account = Account(usage_gateway)
    client = usage_gateway.client
    assert (
        client.post("/api/image", json={"model": "flux", "prompt": "a cat"}, headers=account.auth).status_code
        == 200
    )
    generation = {"model": "flux", "prompt": "a dog", "size": "64x64"}
    assert client.post("/api/images/generations", json=generation, headers=account.auth).status_code == 200
    video = {"model": "veo", "prompt": "a wave", "duration": 6}
    assert client.post("/api/video", json=video, headers=account.auth).status_code == 200
    failed = {"model": "veo", "prompt": "status:500", "duration": 4}
    assert client.post("/api/video", json=failed, headers=account.auth).status_code == 502
    answer = totals(account, requests=4)
    rows = {row["model"]: row for row in answer["data"]}
    assert rows["flux"] == {**rows["flux"], "modality": "image", "requests": 2, "images": 2, "errors": 0}
    assert rows["veo"] == {**rows["veo"], "modality": "video", "requests": 2, "videoSeconds": 6, "errors": 1}


def _anonymous_requests(data_dir: Path, upstash: UpstashEmulator | None) -> int:
    """The anonymous chat requests to `openai` recorded today, as the store keeps them."""
    if upstash is not None:
        with upstash.connection() as redis:
            count = redis.call("HGET", f"cgpt:usage:anonymous:{today()}", "|openai|chat|requests")
        return int(count or 0)
    rows = SqliteUsage(data_dir / "usage.sqlite3").rows("anonymous", today(), today())
    return sum(row.counts["requests"] for row in rows if (row.key_id, row.model) == ("", "openai"))


def _forget_earlier_tests(upstash: UpstashEmulator | None) -> None:
    """Empty the shared emulator again once a new gateway is up: by then an earlier test's
    gateway has finished writing the record of its last answer, which lands after it."""
    if upstash is not None:
        upstash.reset()


def _usage_store_text(data_dir: Path, upstash: UpstashEmulator | None) -> str:
    """Everything the usage store holds, keys and values, as text."""
    if upstash is not None:
        with upstash.connection() as redis:
            keys = redis.call("KEYS", "cgpt:usage:*")
            hashes = [redis.call("HGETALL", key) for key in keys]
        return repr((keys, hashes))
    return "".join(path.read_bytes().decode("latin-1") for path in data_dir.glob("usage.sqlite3*"))


@pytest.mark.parametrize("on", ["sqlite", "upstash"])
def test_anonymous_traffic_is_counted_without_any_ip_stored(
    start_gateway: Callable[..., Gateway], request: pytest.FixtureRequest, tmp_path: Path, on: str
) -> None:
    upstash = request.getfixturevalue("upstash") if on == "upstash" else None
    env = (
        {"UPSTASH_REDIS_REST_URL": upstash.url, "UPSTASH_REDIS_REST_TOKEN": upstash.token} if upstash else {}
    )
    gateway = start_gateway(**env, CLOUDGPT_DATA_DIR=str(tmp_path), RATE_LIMIT_CHAT_ANONYMOUS="100")
    _forget_earlier_tests(upstash)
    body = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        assert gateway.client.post("/api/chat", json=body).status_code == 200
    assert eventually(lambda: _anonymous_requests(tmp_path, upstash), lambda n: n >= 3) == 3
    stored = _usage_store_text(tmp_path, upstash)
    assert "anonymous" in stored
    assert "127.0.0.1" not in stored
    if upstash is not None:  # one hash a day, kept at least 90 days
        with upstash.connection() as redis:
            assert 90 * 86_400 < redis.call("TTL", f"cgpt:usage:anonymous:{today()}") <= 100 * 86_400


def test_another_users_usage_is_never_visible(usage_gateway: Gateway) -> None:
    mine, theirs = Account(usage_gateway), Account(usage_gateway)
    assert theirs.chat().status_code == 200
    assert totals(theirs)["totals"]["requests"] == 1
    assert mine.usage().json()["data"] == []
    their_key = mine.usage(f"?keyId={theirs.key_id}")
    assert their_key.status_code == 200 and their_key.json()["data"] == []
    with_their_key = mine.usage(credentials=theirs.auth)  # a key answers for its own user only
    assert {row["keyId"] for row in with_their_key.json()["data"]} == {theirs.key_id}


def test_a_revoked_keys_usage_stays_under_its_id_and_keyid_picks_one_key(usage_gateway: Gateway) -> None:
    account = Account(usage_gateway)
    other_id, other_key = account.new_key()
    assert account.chat().status_code == 200
    other = {"model": "openai", "messages": [{"role": "user", "content": "x"}]}
    assert usage_gateway.client.post(
        "/api/chat", json=other, headers={"Authorization": f"Bearer {other_key}"}
    )
    totals(account, requests=2)
    assert usage_gateway.client.delete(f"/api/keys/{other_id}", headers=account.token).status_code == 200
    answer = account.usage().json()
    assert {row["keyId"] for row in answer["data"]} == {account.key_id, other_id}
    assert answer["revokedKeys"] == {other_id: "Default key"}  # the name it had
    only = account.usage(f"?keyId={other_id}&days=1").json()
    assert [row["keyId"] for row in only["data"]] == [other_id]
    assert only["from"] == only["to"]


BAD_QUERIES = (
    "days=0",
    "days=91",
    "days=abc",
    "days=1.5",
    "days=-1",
    "days=",
    "keyId=nope",
    "keyId=key_x",
    "keyId=",
    "format=xml",
)


def each_is_a_400_naming_it(gateway: Gateway, api_key: str, path: str, queries: tuple[str, ...]) -> None:
    for query in queries:
        response = gateway.client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "invalid_parameter"
        assert response.json()["error"]["param"] == query.split("=")[0]


def test_a_bad_query_is_a_400_naming_it(open_gateway: Gateway, api_key: str) -> None:
    each_is_a_400_naming_it(open_gateway, api_key, "/api/usage", BAD_QUERIES)


def test_usage_needs_credentials(open_gateway: Gateway) -> None:
    response = open_gateway.client.get("/api/usage")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


def test_a_failing_store_never_changes_the_answer(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    (tmp_path / "usage.sqlite3").mkdir()  # SQLite cannot open a directory
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(tmp_path))
    body = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    response = gateway.client.post("/api/chat", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: hi"
    log = eventually(lambda: (gateway.log.seek(0), gateway.log.read())[1], lambda text: b"usage not" in text)
    assert b"usage not recorded for a chat request" in log


def test_four_instances_under_fifty_concurrent_requests_each_record_exactly_two_hundred(
    start_gateway: Callable[..., Gateway], backend: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **backend,
        "CLOUDGPT_DATA_DIR": str(tmp_path),
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_CHAT_AUTHENTICATED": "1000",
    }
    gateways = [start_gateway(**env) for _ in range(4)]
    account = Account(gateways[0])
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [
            r for rs in pool.map(burst, [g.url for g in gateways], [50] * 4, [account.auth] * 4) for r in rs
        ]
    assert [status for status, _, _ in results] == [200] * 200
    answer = eventually(lambda: account.usage().json(), lambda a: a["totals"]["requests"] >= 200, seconds=30)
    time.sleep(0.5)  # nothing more arrives
    answer = account.usage().json()
    assert answer["totals"] == {
        **ZERO,
        "requests": 200,
        "promptTokens": 200 * USAGE["prompt_tokens"],
        "completionTokens": 200 * USAGE["completion_tokens"],
    }


def test_the_local_command_prints_the_usage_as_a_table(
    usage_gateway: Gateway, backend: dict[str, str]
) -> None:
    account = Account(usage_gateway)
    assert account.chat().status_code == 200
    totals(account)
    env = {**os.environ, **backend, "CLOUDGPT_DATA_DIR": usage_gateway.env["CLOUDGPT_DATA_DIR"]}
    run = subprocess.run(
        [sys.executable, "-m", "lib.keys", "usage", "--user", account.user, "--days", "7"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["date", "keyId", "model", "modality", *ZERO]
    assert lines[2].split() == [
        time.strftime("%Y-%m-%d", time.gmtime()),
        account.key_id,
        "openai",
        "chat",
        "1",
        "0",
        "9",
        "3",
        "0",
        "0",
    ]
    assert lines[-1].split() == ["total", "1", "0", "9", "3", "0", "0"]


ROUND_TRIP = 0.5  # the emulator's delay: long enough to tell who waited for it


def _timed_chat(gateway: Gateway, **fields: Any) -> float:
    body = {"model": "openai", "messages": [{"role": "user", "content": "hi"}], **fields}
    started = time.monotonic()
    response = gateway.client.post("/api/chat", json=body)  # read to the body's end
    assert response.status_code == 200
    return time.monotonic() - started


def test_the_callers_last_byte_never_waits_for_the_record(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator, tmp_path: Path
) -> None:
    gateway = start_gateway(**upstash_env(upstash.url, timeout=5))
    _forget_earlier_tests(upstash)
    _timed_chat(gateway)  # the first request of an instance opens its clients
    assert eventually(lambda: _anonymous_requests(tmp_path, upstash), lambda n: n == 1) == 1
    upstash.delay = ROUND_TRIP
    for fields in ({}, {"stream": True}):
        # The rate-limit check's round trip comes before the first byte; the record's after the last.
        assert _timed_chat(gateway, **fields) < 2 * ROUND_TRIP
    assert eventually(lambda: _anonymous_requests(tmp_path, upstash), lambda n: n == 3) == 3


def _until_eof(url: str, **fields: Any) -> tuple[float, bytes]:
    """POST /api/chat over HTTP/1.0 and read to the connection's end, as Vercel's proxy reads a function.

    The time is the one to `data: [DONE]` for a stream (its last event), else to the end.
    """
    body = json.dumps({"model": "openai", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    last_event = None
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/chat HTTP/1.0\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            if last_event is None and b"data: [DONE]" in answer:
                last_event = time.monotonic() - started
    return (last_event if last_event is not None else time.monotonic() - started), answer


def test_on_vercel_every_answer_is_recorded_before_the_invocation_ends(
    start_gateway: Callable[..., Gateway], upstash: UpstashEmulator, tmp_path: Path
) -> None:
    # Vercel's runtime, like wsgiref, speaks HTTP/1.0 and closes the connection once
    # the body is closed, and may suspend the instance once the invocation ends. So
    # the record is written inside close(): there when the connection ends, never
    # left to a thread. A sized body has all its bytes out by then, and a stream its
    # last event: only the connection's end waits for the store.
    function = start_gateway(
        ("-m", "tests.function_server", "api/chat.py", "--port", "{port}"),
        **upstash_env(upstash.url, timeout=5), VERCEL="1",
    )  # fmt: skip
    _forget_earlier_tests(upstash)
    upstash.delay = ROUND_TRIP
    _, answer = _until_eof(function.url)
    assert answer.startswith(b"HTTP/1.0 200") and b"Content-Length" in answer
    assert _anonymous_requests(tmp_path, upstash) == 1
    to_last_event, answer = _until_eof(function.url, stream=True)
    assert answer.rstrip().endswith(b"data: [DONE]")
    assert to_last_event < 2 * ROUND_TRIP  # the rate-limit check, not the record
    assert _anonymous_requests(tmp_path, upstash) == 2  # written before the connection ended


def test_a_mapleai_stream_records_its_usage_chunk_like_pollinations(open_gateway: Gateway) -> None:
    account = Account(open_gateway)
    asked = account.chat(model="mapleai-gpt4o", stream=True, stream_options={"include_usage": True})
    assert _events(asked)[-2]["usage"] == STREAM_USAGE
    assert "usage" not in account.chat(model="mapleai-gpt4o", stream=True).text
    answer = totals(account, requests=2)
    assert answer["data"] == [
        {
            **answer["data"][0],
            "model": "mapleai-gpt4o",
            "requests": 2,
            "promptTokens": 2 * STREAM_USAGE["prompt_tokens"],
            "completionTokens": 2 * STREAM_USAGE["completion_tokens"],
        }
    ]
