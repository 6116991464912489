"""API keys end to end through HTTP, on both key stores: create, use, list, delete, refuse."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lib.keys.format import new_key
from tests.key_stores import Store

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}
KEY_SHAPE = re.compile(r"cgpt_[A-Za-z0-9_-]{38}")


def create(store: Store, credential: str, **body: object) -> httpx.Response:
    return store.gateway.client.post("/api/keys", json=body, headers=store.auth(credential))


def listing(store: Store, credential: str) -> list[dict]:
    response = store.gateway.client.get("/api/keys", headers=store.auth(credential))
    assert response.status_code == 200, response.text
    return response.json()["data"]


NO_CONTROLS = {
    "expires": None,
    "disabled": False,
    "models": None,
    "limits": {"chat": None, "image": None, "video": None},
    "quota": None,
}


def chat(store: Store, key: str) -> httpx.Response:
    return store.gateway.client.post("/api/chat", json=CHAT, headers=store.auth(key))


def delete(store: Store, credential: str, key_id: str) -> httpx.Response:
    return store.gateway.client.delete(f"/api/keys/{key_id}", headers=store.auth(credential))


def test_key_is_created_used_listed_deleted_and_then_refused(store: Store) -> None:
    user = store.new_user()
    token = store.token(user)
    before = int(time.time())
    created = create(store, token, name="My Production Key")
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "key", "name", "created", *NO_CONTROLS}
    assert re.fullmatch(r"key_[A-Za-z0-9]{20}", body["id"])
    assert KEY_SHAPE.fullmatch(body["key"])
    assert body["name"] == "My Production Key"
    assert before - 1 <= body["created"] <= time.time() + 1

    [unused] = listing(store, token)
    assert unused == {
        "id": body["id"],
        "name": "My Production Key",
        "prefix": body["key"][:9] + "...",
        "created": body["created"],
        "lastUsed": None,
        **NO_CONTROLS,
    }

    used = chat(store, body["key"])
    assert used.status_code == 200, used.text
    assert used.headers["X-RateLimit-Limit"] == "100000"  # the authenticated limit, not the anonymous one

    [entry] = listing(store, token)
    assert before - 1 <= entry["lastUsed"] <= time.time() + 1

    deleted = delete(store, token, body["id"])
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": True, "id": body["id"]}
    refused = chat(store, body["key"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert listing(store, token) == []


def test_keys_are_listed_newest_first_without_key_or_hash(store: Store) -> None:
    token = store.token(store.new_user())
    keys = [create(store, token, name=f"key {n}").json() for n in range(3)]
    listed = listing(store, token)
    assert [k["id"] for k in listed] == [k["id"] for k in reversed(keys)]
    for entry in listed:
        assert set(entry) == {"id", "name", "prefix", "created", "lastUsed", *NO_CONTROLS}
        assert not any(k["key"] in str(entry.values()) for k in keys)


def test_name_is_optional_and_trimmed(store: Store) -> None:
    token = store.token(store.new_user())
    no_body = store.gateway.client.post("/api/keys", headers=store.auth(token))
    assert no_body.status_code == 201, no_body.text
    assert no_body.json()["name"] == "Default key"
    assert create(store, token).json()["name"] == "Default key"
    assert create(store, token, name="  dev  ").json()["name"] == "dev"
    assert create(store, token, name="x" * 100).json()["name"] == "x" * 100


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": ""}, "invalid_value"),
        ({"name": "   "}, "invalid_value"),
        ({"name": "x" * 101}, "invalid_value"),
        ({"name": 123}, "invalid_value"),
        ({"name": None}, "invalid_value"),
        ({"name": "ok", "scopes": ["all"]}, "unknown_field"),
    ],
)
def test_bad_names_are_400s_naming_the_field(store: Store, body: dict, code: str) -> None:
    token = store.token(store.new_user())
    response = create(store, token, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert listing(store, token) == []


def test_a_user_has_at_most_25_keys_even_under_concurrent_creation(store: Store) -> None:
    token = store.token(store.new_user())
    barrier = threading.Barrier(30)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=store.gateway.url, timeout=30) as client:
            barrier.wait()
            return client.post("/api/keys", json={}, headers=store.auth(token))

    with ThreadPoolExecutor(30) as pool:
        responses = list(pool.map(one, range(30)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 25 + [400] * 5, [r.text for r in responses if r.status_code not in (201, 400)]
    refused = next(r for r in responses if r.status_code == 400)
    assert refused.json()["error"]["code"] == "key_limit_reached"
    assert "25" in refused.json()["error"]["message"]
    assert len(listing(store, token)) == 25


def test_a_key_lists_its_users_keys_but_cannot_create_or_delete_them(store: Store) -> None:
    user = store.new_user()
    token = store.token(user)
    first = create(store, token, name="first").json()
    second = create(store, token, name="second").json()
    assert [k["name"] for k in listing(store, first["key"])] == ["second", "first"]
    for refused in (create(store, first["key"], name="third"), delete(store, first["key"], second["id"])):
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "account_session_required")
        assert "access token" in error["message"]
    assert [k["name"] for k in listing(store, token)] == ["second", "first"]  # nothing minted or revoked
    assert delete(store, token, second["id"]).json() == {"deleted": True, "id": second["id"]}
    assert [k["name"] for k in listing(store, token)] == ["first"]


def test_anonymous_sign_ins_get_no_keys(store: Store) -> None:
    anonymous = store.token(store.new_user(), is_anonymous=True)
    refused = create(store, anonymous)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "anonymous_account"
    assert listing(store, anonymous) == []  # reading an empty account is harmless
    signed_in = store.token(store.new_user(), is_anonymous=False)
    assert create(store, signed_in).status_code == 201


def same_but_the_request_id(response: httpx.Response) -> dict[str, object]:
    """An error envelope without what differs between any two requests: their ids."""
    return {name: value for name, value in response.json()["error"].items() if name != "requestId"}


def test_one_user_cannot_list_use_or_delete_anothers_keys(store: Store) -> None:
    alice, bob = store.new_user(), store.new_user()
    key = create(store, store.token(alice), name="alice's").json()
    bob_token = store.token(bob)
    assert listing(store, bob_token) == []

    not_hers = delete(store, bob_token, key["id"])
    unknown = delete(store, bob_token, "key_" + "A" * 20)
    assert not_hers.status_code == unknown.status_code == 404
    assert same_but_the_request_id(not_hers) == same_but_the_request_id(unknown)
    assert delete(store, store.token(alice), create(store, bob_token).json()["id"]).status_code == 404

    assert chat(store, key["key"]).status_code == 200  # still alice's, still working
    assert [k["id"] for k in listing(store, store.token(alice))] == [key["id"]]


@pytest.mark.parametrize(
    "key",
    [
        "cgpt_notarealkey",
        "sk-something-else",
        "cgpt_" + "A" * 38,  # the right shape, a wrong checksum
    ],
)
def test_malformed_keys_are_refused_without_asking_the_store(store: Store, key: str, request) -> None:
    seen = len(request.getfixturevalue("supabase").requests) if store.kind == "supabase" else 0
    response = chat(store, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    if store.kind == "supabase":
        assert len(request.getfixturevalue("supabase").requests) == seen


def test_a_well_formed_unknown_key_is_refused(store: Store) -> None:
    response = chat(store, new_key())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_managing_keys_needs_credentials(store: Store) -> None:
    for response in (
        store.gateway.client.get("/api/keys"),
        store.gateway.client.post("/api/keys", json={}),
        store.gateway.client.delete("/api/keys/key_" + "A" * 20),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_credentials"


def test_last_used_is_written_at_most_once_a_minute(store: Store, start_gateway) -> None:
    """Every request verified against the store (no cache): a second use within the
    minute leaves `lastUsed` as the first use set it."""
    uncached = start_gateway(**store.env | {"CLOUDGPT_KEY_CACHE_SECONDS": "0"})
    token = store.token(store.new_user())
    key = create(store, token).json()["key"]
    headers = store.auth(key)
    assert uncached.client.post("/api/chat", json=CHAT, headers=headers).status_code == 200
    [first] = listing(store, token)
    time.sleep(1.1)
    assert uncached.client.post("/api/chat", json=CHAT, headers=headers).status_code == 200
    [second] = listing(store, token)
    assert first["lastUsed"] is not None
    assert second["lastUsed"] == first["lastUsed"]
