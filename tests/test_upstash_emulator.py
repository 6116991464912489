"""The Upstash emulator speaks Upstash's documented REST protocol, and the official client works on it.

The limiter's tests are only as good as this emulator: here it is held to the
documentation (status codes, bodies, base64, pipelines, transactions, auth), both
through `upstash-redis` unchanged and through raw HTTP.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

from tests.fakes.upstash import UpstashEmulator
from tests.upstash_fixtures import UPSTASH_TOKEN


@pytest.fixture
def raw(upstash: UpstashEmulator) -> httpx.Client:
    with httpx.Client(base_url=upstash.url, headers={"Authorization": f"Bearer {UPSTASH_TOKEN}"}) as client:
        yield client


@pytest.mark.parametrize("encoding", ["base64", None])
def test_the_official_client_works_unchanged(upstash: UpstashEmulator, encoding: str | None) -> None:
    with Redis(upstash.url, UPSTASH_TOKEN, rest_encoding=encoding) as redis:
        assert redis.set("greeting", "héllo wörld") is True
        assert redis.get("greeting") == "héllo wörld"
        assert redis.get("missing") is None
        assert redis.incr("n") == 1
        assert redis.expire("n", 100, nx=True) is True
        assert redis.expire("n", 5, nx=True) is False
        assert 95 <= redis.ttl("n") <= 100
        redis.rpush("list", "a", "b")
        assert redis.lrange("list", 0, -1) == ["a", "b"]
        assert redis.eval("return {KEYS[1], ARGV[1], 7}", keys=["k"], args=["v"]) == ["k", "v", 7]
        with pytest.raises(UpstashError, match="not an integer"):
            redis.incr("greeting")

        pipeline = redis.pipeline()
        pipeline.incr("p")
        pipeline.incr("p")
        assert pipeline.exec() == [1, 2]

        transaction = redis.multi()
        transaction.incr("t")
        transaction.expire("t", 60, nx=True)
        transaction.get("greeting")
        assert transaction.exec() == [1, True, "héllo wörld"]


def test_a_command_is_a_json_array_answered_by_result_or_error(raw: httpx.Client) -> None:
    assert (raw.post("/", json=["SET", "foo", "bar", "EX", 100]).json()) == {"result": "OK"}
    response = raw.post("/", json=["GET", "foo"])
    assert (response.status_code, response.json()) == (200, {"result": "bar"})
    response = raw.post("/", json=["INCR", "foo"])
    assert response.status_code == 400
    assert response.json() == {"error": "ERR value is not an integer or out of range"}
    response = raw.post("/", json=["GET"])
    assert response.status_code == 400
    assert response.json()["error"].startswith("ERR wrong number of arguments")


def test_base64_encoding_covers_every_string_but_ok(raw: httpx.Client) -> None:
    b64 = {"Upstash-Encoding": "base64"}
    assert raw.post("/", json=["SET", "foo", "bar"], headers=b64).json() == {"result": "OK"}
    assert raw.post("/", json=["GET", "foo"], headers=b64).json() == {"result": "YmFy"}
    assert raw.post("/", json=["PING"], headers=b64).json() == {"result": base64.b64encode(b"PONG").decode()}
    assert raw.post("/", json=["INCR", "n"], headers=b64).json() == {"result": 1}
    assert raw.post("/", json=["MGET", "foo", "nope"], headers=b64).json() == {"result": ["YmFy", None]}


def test_commands_in_the_path_with_the_body_as_last_argument(raw: httpx.Client) -> None:
    assert raw.get("/set/foo/bar").json() == {"result": "OK"}
    assert raw.post("/set/doc?EX=100", content=b'{"a": 1}').json() == {"result": "OK"}
    assert raw.get("/get/doc").json() == {"result": '{"a": 1}'}
    assert 0 < raw.get("/ttl/doc").json()["result"] <= 100


def test_a_pipeline_answers_each_command_and_is_not_discarded_by_one_error(raw: httpx.Client) -> None:
    response = raw.post(
        "/pipeline",
        json=[["SET", "key1", "valuex"], ["SETEX", "key2", 13, "valuez"], ["INCR", "key1"], ["INCR", "c"]],
    )
    assert response.status_code == 200
    assert response.json() == [
        {"result": "OK"},
        {"result": "OK"},
        {"error": "ERR value is not an integer or out of range"},
        {"result": 1},
    ]


def test_a_transaction_runs_whole_or_is_discarded_whole(raw: httpx.Client) -> None:
    response = raw.post("/multi-exec", json=[["SET", "k", "v"], ["INCR", "k"], ["INCR", "n"]])
    assert response.status_code == 200
    assert response.json() == [
        {"result": "OK"},
        {"error": "ERR value is not an integer or out of range"},
        {"result": 1},
    ]
    response = raw.post("/multi-exec", json=[["INCR", "n"], ["GET"]])  # GET without its key: refused
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert raw.post("/", json=["GET", "n"]).json() == {"result": "1"}  # the INCR never ran


def test_auth_is_a_bearer_token_or_the_token_parameter(upstash: UpstashEmulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {UPSTASH_TOKEN}"}):
        response = httpx.post(upstash.url, json=["PING"], headers=headers)
        assert response.status_code == 401
        assert set(response.json()) == {"error"}
    assert httpx.post(f"{upstash.url}/?_token={UPSTASH_TOKEN}", json=["PING"]).json() == {"result": "PONG"}
    with Redis(upstash.url, "wrong") as redis, pytest.raises(UpstashError):
        redis.ping()


def test_malformed_requests_are_400_and_other_methods_405(raw: httpx.Client) -> None:
    for body in (b"not json", b"[]", b'{"cmd": "GET"}', b'["SET", "k", true]'):
        response = raw.post("/", content=body)
        assert (response.status_code, set(response.json())) == (400, {"error"})
    assert raw.post("/pipeline", json=["GET", "k"]).status_code == 400
    assert raw.post("/", json=["MULTI"]).status_code == 400
    assert raw.delete("/").status_code == 405
