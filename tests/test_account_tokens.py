"""Supabase Auth access tokens on /api/keys: verified locally, every kind of bad token refused."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import jwt
import pytest

from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import EC_KEY, JWT_SECRET, RSA_KEY, Store, store_env


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(store: Store, user: str) -> str:
    """A valid token whose payload was changed to name another user after signing."""
    header, _, signature = store.token(user).split(".")
    payload = jwt.decode(store.token(user), options={"verify_signature": False}) | {"sub": store.new_user()}
    return f"{header}.{_b64(payload)}.{signature}"


def unsigned(store: Store, user: str) -> str:
    """`alg: none`: a token that claims no signature is needed."""
    payload = jwt.decode(store.token(user), options={"verify_signature": False})
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


BAD_TOKENS: dict[str, Callable[[Store, str], str]] = {
    "tampered": tampered,
    "expired": lambda s, u: s.token(u, exp=int(time.time()) - 10),
    "wrong audience": lambda s, u: s.token(u, aud="anon"),
    "wrong secret": lambda s, u: s.token(u, key="another-secret-another-secret-0123"),
    "alg none": unsigned,
    "no expiry": lambda s, u: jwt.encode(
        {k: v for k, v in jwt.decode(s.token(u), options={"verify_signature": False}).items() if k != "exp"},
        JWT_SECRET,
    ),
    "subject not a user id": lambda s, u: s.token("not-a-uuid"),
    "RS256 with an unknown key": lambda s, u: s.token(u, alg="RS256", key=RSA_KEY, kid="rsa-unknown"),
    "RS256 naming the EC key": lambda s, u: s.token(u, alg="RS256", key=RSA_KEY, kid="ec-1"),
    "ES256 naming the RSA key": lambda s, u: s.token(u, alg="ES256", key=EC_KEY, kid="rsa-1"),
    "not a JWT": lambda s, u: "not.a.jwt",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_access_tokens_are_refused(store: Store, kind: str) -> None:
    user = store.new_user()
    token = BAD_TOKENS[kind](store, user)
    for response in (
        store.gateway.client.get("/api/keys", headers=store.auth(token)),
        store.gateway.client.post("/api/keys", json={}, headers=store.auth(token)),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("store", ["supabase"], indirect=True)  # `iss` is checked when SUPABASE_URL is set
def test_a_token_from_another_project_is_refused(store: Store) -> None:
    token = store.token(store.new_user(), iss="https://other-project.supabase.co/auth/v1")
    response = store.gateway.client.get("/api/keys", headers=store.auth(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_an_access_token_on_chat_counts_as_its_user_without_a_key(store: Store) -> None:
    """The playground's way in: a signed-in user's calls get the user's limits and usage, under no key."""
    token = store.token(store.new_user())
    chat = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    response = store.gateway.client.post("/api/chat", json=chat, headers=store.auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Limit"] == "100000"  # the authenticated budget
    forged = store.token(store.new_user(), key="another-secret-of-at-least-thirty-two-bytes")
    refused = store.gateway.client.post("/api/chat", json=chat, headers=store.auth(forged))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"


@pytest.fixture(scope="session")
def jwks_gateways(
    supabase: FakeSupabase, start_session_gateway: Callable[..., Gateway], postgres
) -> dict[str, tuple[Gateway, Callable[[], str]]]:
    """Gateways that verify asymmetric tokens with the project's JWKS: on Supabase, and on
    the embedded store with only SUPABASE_URL set (no service-role key)."""
    return {
        "supabase": (start_session_gateway(**store_env("supabase", supabase)), postgres.new_user),
        "embedded": (start_session_gateway(SUPABASE_URL=supabase.url), lambda: str(uuid.uuid4())),
    }


@pytest.mark.parametrize("where", ["supabase", "embedded"])
@pytest.mark.parametrize(("alg", "key"), [("RS256", RSA_KEY), ("ES256", EC_KEY)])
def test_asymmetric_tokens_are_verified_with_the_projects_jwks(
    jwks_gateways, supabase: FakeSupabase, where: str, alg: str, key: object
) -> None:
    gateway, new_user = jwks_gateways[where]
    store = Store(where, gateway, {}, f"{supabase.url}/auth/v1", new_user)
    user = new_user()
    created = gateway.client.post(
        "/api/keys", json={"name": alg}, headers=store.auth(store.token(user, alg=alg, key=key))
    )
    assert created.status_code == 201, created.text
    listed = gateway.client.get("/api/keys", headers=store.auth(store.token(user, alg=alg, key=key)))
    assert [k["name"] for k in listed.json()["data"]] == [alg]
    expired = store.token(user, alg=alg, key=key, exp=int(time.time()) - 10)
    assert gateway.client.get("/api/keys", headers=store.auth(expired)).status_code == 401


def test_jwks_is_fetched_once(jwks_gateways, supabase: FakeSupabase) -> None:
    gateway, new_user = jwks_gateways["embedded"]
    store = Store("embedded", gateway, {}, f"{supabase.url}/auth/v1", new_user)
    before = supabase.jwks_fetches
    for _ in range(3):
        token = store.token(new_user(), alg="ES256", key=EC_KEY)
        assert gateway.client.get("/api/keys", headers=store.auth(token)).status_code == 200
    assert supabase.jwks_fetches - before <= 1


def test_without_a_way_to_verify_tokens_the_gateway_says_so(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway()
    token = jwt.encode({"sub": "x", "aud": "authenticated", "exp": int(time.time()) + 60}, JWT_SECRET)
    response = gateway.client.get("/api/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "account_tokens_not_configured"


@pytest.mark.parametrize(("alg", "key", "kid"), [("RS256", RSA_KEY, "ec-1"), ("ES256", EC_KEY, "rsa-1")])
def test_an_algorithm_that_does_not_fit_the_key_it_names_is_a_401(
    jwks_gateways, supabase: FakeSupabase, alg: str, key: object, kid: str
) -> None:
    gateway, new_user = jwks_gateways["embedded"]  # only the JWKS can verify: the path under test
    store = Store("embedded", gateway, {}, f"{supabase.url}/auth/v1", new_user)
    response = gateway.client.get(
        "/api/keys", headers=store.auth(store.token(new_user(), alg=alg, key=key, kid=kid))
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"


def test_a_signing_key_revoked_in_supabase_stops_being_accepted(
    supabase: FakeSupabase, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(SUPABASE_URL=supabase.url, SUPABASE_JWKS_CACHE_SECONDS="0.5")
    store = Store("embedded", gateway, {}, f"{supabase.url}/auth/v1", lambda: "")
    token = store.token(str(uuid.uuid4()), alg="RS256", key=RSA_KEY)
    assert gateway.client.get("/api/keys", headers=store.auth(token)).status_code == 200
    published = supabase.jwks
    supabase.jwks = {"keys": [k for k in published["keys"] if k["kid"] != "rsa-1"]}
    try:
        time.sleep(0.6)
        response = gateway.client.get("/api/keys", headers=store.auth(token))
    finally:
        supabase.jwks = published
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
