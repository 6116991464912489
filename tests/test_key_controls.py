"""Keys with controls: expiry, disabled, model scopes, per-key limits, quotas, and changes that hold at once.

Every test runs on both key stores (SQLite, Supabase's functions on the real
PostgreSQL); those about counting run on both counter backends too (SQLite,
Upstash's REST API in front of a real Redis). "Another instance" is a second
local server on the same stores, with the default verification cache (30 s).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lib.keys.format import key_hash, new_key, new_key_id, shown
from tests.conftest import Gateway
from tests.fakes.openai_chat import USAGE
from tests.key_stores import Store
from tests.test_key_lifecycle import cli
from tests.test_limits import inside_one_window
from tests.upstash_fixtures import upstash_env

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}
IMAGE = {"prompt": "a red fox", "model": "flux"}


def chat(gateway: Gateway, key: str, body: dict = CHAT, path: str = "/api/chat") -> httpx.Response:
    return gateway.client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def create(store: Store, token: str, gateway: Gateway | None = None, **fields: object) -> httpx.Response:
    return (gateway or store.gateway).client.post("/api/keys", json=fields, headers=store.auth(token))


def patch(
    store: Store, token: str, key_id: str, gateway: Gateway | None = None, **fields: object
) -> httpx.Response:
    return (gateway or store.gateway).client.patch(
        f"/api/keys/{key_id}", json=fields, headers=store.auth(token)
    )


def until(condition: Callable[[], bool], seconds: float) -> float:
    """How long `condition` took to hold; fails past `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(params=["sqlite", "upstash"])
def counters_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {} if request.param == "sqlite" else upstash_env(request.getfixturevalue("upstash").url)


def instances(store: Store, start: Callable[..., Gateway], n: int, **env: str) -> list[Gateway]:
    """`n` local servers on the store's keys and one set of counters, each its own instance."""
    return [start(**(store.env | env)) for _ in range(n)]


def test_controls_are_set_at_creation_listed_changed_and_cleared(store: Store) -> None:
    token = store.token(store.new_user())
    expires = int(time.time()) + 3600
    controls = {
        "expires": expires,
        "models": ["openai", "flux"],
        "limits": {"chat": 5},
        "quota": {"period": "month", "requests": 100, "tokens": None},
    }
    created = create(store, token, name="ci", **controls)
    assert created.status_code == 201, created.text
    key = created.json()
    shown_controls = {
        "expires": expires,
        "disabled": False,
        "models": ["openai", "flux"],
        "limits": {"chat": 5, "image": None, "video": None},
        "quota": {"period": "month", "requests": 100, "tokens": None},
    }
    assert {name: key[name] for name in shown_controls} == shown_controls
    [listed] = store.gateway.client.get("/api/keys", headers=store.auth(token)).json()["data"]
    assert {name: listed[name] for name in shown_controls} == shown_controls
    assert listed["quotaUsed"]["requests"] == 0

    changed = patch(store, token, key["id"], name="ci 2", disabled=True, models=None, quota=None)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["disabled"], body["models"], body["quota"]) == ("ci 2", True, None, None)
    assert (body["expires"], body["limits"]["chat"]) == (expires, 5)  # what was not named stays
    assert "key" not in body and "quotaUsed" not in body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": ["no-such-model"]}, "models[0]"),
        ({"models": []}, "models"),
        ({"limits": {"chat": 100_001}}, "limits.chat"),
        ({"limits": {"chat": 0}}, "limits.chat"),
        ({"limits": {"audio": 1}}, "limits.audio"),
        ({"expires": 1_000_000}, "expires"),
        ({"expires": int(time.time()) + 11 * 365 * 86_400}, "expires"),
        ({"expires": "tomorrow"}, "expires"),
        ({"quota": {"period": "day", "requests": -1}}, "quota.requests"),
        ({"quota": {"period": "week", "requests": 1}}, "quota.period"),
        ({"quota": {"period": "day"}}, "quota"),
        ({"disabled": None}, "disabled"),
    ],
)
def test_out_of_bounds_controls_are_a_400_naming_the_field(store: Store, body: dict, param: str) -> None:
    token = store.token(store.new_user())
    refused = create(store, token, **body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == param
    key = create(store, token).json()
    changed = patch(store, token, key["id"], **body)
    assert changed.status_code == 400, changed.text
    assert changed.json()["error"]["param"] == param


def test_patch_needs_an_account_session_and_the_owner(store: Store) -> None:
    token = store.token(store.new_user())
    key = create(store, token).json()
    with_key = patch(store, key["key"], key["id"], disabled=True)
    assert (with_key.status_code, with_key.json()["error"]["code"]) == (403, "account_session_required")
    stranger = patch(store, store.token(store.new_user()), key["id"], disabled=True)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "key_not_found")
    unknown = patch(store, token, new_key_id(), disabled=True)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "key_not_found")
    assert chat(store.gateway, key["key"]).status_code == 200


def test_a_key_limited_to_some_models_is_refused_the_others_on_every_route(store: Store) -> None:
    token = store.token(store.new_user())
    key = create(store, token, models=["openai"]).json()["key"]
    assert chat(store.gateway, key).status_code == 200
    assert chat(store.gateway, key, path="/v1/chat/completions").status_code == 200
    for answer in (
        chat(store.gateway, key, {**CHAT, "model": "mistral"}),
        chat(store.gateway, key, {**CHAT, "model": "mistral"}, "/v1/chat/completions"),
        chat(store.gateway, key, IMAGE, "/api/image"),
    ):
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("model_not_allowed", "model")
        assert "openai" in error["message"]


def test_an_expiry_crossed_mid_test_refuses_the_key(store: Store) -> None:
    token = store.token(store.new_user())
    expires = int(time.time()) + 2
    key = create(store, token, expires=expires).json()["key"]
    assert chat(store.gateway, key).status_code == 200  # now in this instance's cache
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    refused = chat(store.gateway, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_expired"


def test_changes_and_deletion_hold_on_another_instance_within_a_second(
    store: Store, start_gateway: Callable[..., Gateway], counters_env: dict[str, str], tmp_path: Path
) -> None:
    first, second = instances(store, start_gateway, 2, CLOUDGPT_DATA_DIR=str(tmp_path), **counters_env)
    token = store.token(store.new_user())
    key = create(store, token, first).json()
    assert chat(second, key["key"]).status_code == 200  # verified and cached there for 30 s

    assert patch(store, token, key["id"], first, disabled=True).status_code == 200
    assert until(lambda: chat(second, key["key"]).status_code == 401, 1.0) < 1.0
    assert chat(second, key["key"]).json()["error"]["code"] == "api_key_disabled"
    assert patch(store, token, key["id"], first, disabled=False).status_code == 200
    until(lambda: chat(second, key["key"]).status_code == 200, 1.0)  # enabled: as it was

    assert patch(store, token, key["id"], first, models=["mistral"]).status_code == 200
    until(lambda: chat(second, key["key"]).status_code == 403, 1.0)
    current = second.client.get("/api/keys/current", headers=store.auth(key["key"])).json()
    assert current["models"] == ["mistral"]

    assert first.client.delete(f"/api/keys/{key['id']}", headers=store.auth(token)).status_code == 200
    until(lambda: chat(second, key["key"], {**CHAT, "model": "mistral"}).status_code == 401, 1.0)
    listing = second.client.get("/api/keys", headers=store.auth(key["key"]))
    assert listing.status_code == 401


def test_a_key_limit_is_its_own_and_the_headers_show_the_tighter(
    store: Store, start_gateway: Callable[..., Gateway], counters_env: dict[str, str], tmp_path: Path
) -> None:
    env = {"CLOUDGPT_DATA_DIR": str(tmp_path), "RATE_LIMIT_CHAT_AUTHENTICATED": "5"}
    [gateway] = instances(store, start_gateway, 1, **env, **counters_env)
    token = store.token(store.new_user())
    limited = create(store, token, gateway, limits={"chat": 2}).json()
    other = create(store, token, gateway).json()["key"]
    inside_one_window()
    answers = [chat(gateway, limited["key"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["2", "2", "2"]
    assert [a.headers.get("X-RateLimit-Remaining") for a in answers] == ["1", "0", "0"]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    # A raised limit holds at once, though this instance remembered the key's window as spent.
    patch(store, token, limited["id"], gateway, limits={"chat": 4})
    until(lambda: chat(gateway, limited["key"]).status_code == 200, 1.2)
    # The account's window counted every request of the user's keys: 4 of 5 so far.
    unlimited = [chat(gateway, other) for _ in range(2)]
    assert [a.status_code for a in unlimited] == [200, 429]
    assert unlimited[0].headers["X-RateLimit-Limit"] == "5"


def test_a_request_quota_is_exact_under_concurrency_across_processes(
    store: Store, start_gateway: Callable[..., Gateway], counters_env: dict[str, str], tmp_path: Path
) -> None:
    """20 requests at once on a quota of 5, across two instances of two workers each: exactly 5 pass."""
    gateways = instances(store, start_gateway, 2, CLOUDGPT_DATA_DIR=str(tmp_path), **counters_env)
    token = store.token(store.new_user())
    key = create(store, token, gateways[0], quota={"period": "day", "requests": 5}).json()
    for gateway in gateways:  # each instance has verified the key once: the burst is all warm requests
        gateway.client.get("/api/keys/current", headers=store.auth(key["key"]))

    started = time.time()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: chat(gateways[i % 2], key["key"]), range(20)))

    assert sorted(a.status_code for a in answers) == [200] * 5 + [429] * 15
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "key_quota_exceeded"
    day_end = (int(time.time()) // 86_400 + 1) * 86_400
    assert day_end - time.time() - 1 <= int(refused.headers["Retry-After"]) <= day_end - started + 1
    current = gateways[1].client.get("/api/keys/current", headers=store.auth(key["key"])).json()
    assert current["quotaUsed"] == {"requests": 5, "tokens": 0, "resets": day_end}
    raised = patch(store, token, key["id"], gateways[0], quota={"period": "day", "requests": 6})
    assert raised.json()["quotaUsed"]["requests"] == 5
    until(lambda: chat(gateways[1], key["key"]).status_code == 200, 1.0)  # the raised cap, elsewhere at once


def test_a_token_quota_counts_answers_as_they_end(
    store: Store, start_gateway: Callable[..., Gateway], counters_env: dict[str, str], tmp_path: Path
) -> None:
    [gateway] = instances(store, start_gateway, 1, CLOUDGPT_DATA_DIR=str(tmp_path), **counters_env)
    token = store.token(store.new_user())
    key = create(store, token, gateway, quota={"period": "month", "tokens": 1}).json()
    answered = [chat(gateway, key["key"])]
    assert answered[0].status_code == 200  # the cap is crossed by this answer's tokens

    def spent() -> bool:
        answered.append(chat(gateway, key["key"]))
        return answered[-1].status_code == 429

    until(spent, 5.0)  # once an answer's usage was written: until then, others may cross it too
    assert answered[-1].json()["error"]["code"] == "key_quota_exceeded"
    served = sum(answer.status_code == 200 for answer in answered)

    def used() -> dict:
        return gateway.client.get("/api/keys/current", headers=store.auth(key["key"])).json()["quotaUsed"]

    # Every served answer's tokens are counted, once its usage is written.
    until(lambda: used()["tokens"] == served * (USAGE["prompt_tokens"] + USAGE["completion_tokens"]), 5.0)
    assert used()["requests"] == served


def test_the_current_key_answers_its_settings_and_never_the_key(store: Store) -> None:
    token = store.token(store.new_user())
    key = create(store, token, name="bot", limits={"image": 3}).json()
    answer = store.gateway.client.get("/api/keys/current", headers=store.auth(key["key"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["name"], body["limits"]["image"]) == (key["id"], "bot", 3)
    assert key["key"] not in answer.text and "quotaUsed" not in body
    with_token = store.gateway.client.get("/api/keys/current", headers=store.auth(token))
    assert (with_token.status_code, with_token.json()["error"]["code"]) == (401, "invalid_api_key")


def test_the_cli_sets_and_changes_controls(store: Store) -> None:
    user = store.new_user()
    created = cli(store.env, "create", "--user", user, "--models", "openai", "--limit-chat", "3",
                  "--quota-period", "day", "--quota-requests", "10")  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert (key["models"], key["limits"]["chat"], key["quota"]["requests"]) == (["openai"], 3, 10)
    changed = cli(store.env, "update", "--user", user, key["id"], "--disable", "--no-models", "--no-quota")
    assert changed.returncode == 0, changed.stderr
    body = json.loads(changed.stdout)
    assert (body["disabled"], body["models"], body["quota"]) == (True, None, None)
    assert chat(store.gateway, key["key"]).json()["error"]["code"] == "api_key_disabled"
    bad = cli(store.env, "update", "--user", user, key["id"], "--limit-chat", "999999")
    assert bad.returncode == 2 and "limits.chat" in bad.stderr


def test_a_key_file_from_before_controls_keeps_its_keys_working(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    key = new_key()
    with sqlite3.connect(tmp_path / "keys.sqlite3") as db:  # the schema as it was, and one key in it
        db.execute(
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL,"
            " prefix TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created INTEGER NOT NULL, last_used INTEGER)"
        )
        db.execute(
            "INSERT INTO api_keys VALUES (?, ?, 'old', ?, ?, ?, NULL)",
            (
                new_key_id(),
                "0b9f0f4e-7d7e-4c55-9a0e-3d1b3d3f3a11",
                shown(key),
                key_hash(key),
                int(time.time()),
            ),
        )
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(tmp_path))
    assert chat(gateway, key).status_code == 200
    current = gateway.client.get("/api/keys/current", headers={"Authorization": f"Bearer {key}"}).json()
    assert (current["name"], current["models"], current["quota"], current["disabled"]) == (
        "old",
        None,
        None,
        False,
    )
