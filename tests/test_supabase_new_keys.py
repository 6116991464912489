"""A Supabase project as created today: publishable and secret keys, ES256 access tokens, no JWT secret.

CloudGPT reads the keys under Supabase's current names (SUPABASE_SECRET_KEY,
SUPABASE_PUBLISHABLE_KEY) or the legacy ones, and needs nothing else: access tokens
are verified through the project's JWKS. The emulated project has its legacy JWT keys
disabled, so a test cannot pass by one of them being used behind its back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import jwt
import pytest

from lib.settings import SettingsError, load
from tests.browser import Browser
from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import JWT_SECRET, access_token, new_keys_env
from tests.postgres import Postgres
from tests.test_key_lifecycle import CHAT, chat, cli
from tests.test_pages_dashboard import create_key
from tests.test_pages_supabase import PASSWORD, fill, new_email, open_dashboard, signed_in_as

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}
LEGACY_SERVICE_ROLE = jwt.encode({"role": "service_role", "iss": "supabase"}, "x" * 32)
LEGACY_ANON = jwt.encode({"role": "anon", "iss": "supabase"}, "x" * 32)


@pytest.fixture(scope="module")
def new_keys_gateway(
    start_module_gateway: Callable[..., Gateway], supabase_new_keys: FakeSupabase
) -> Gateway:
    gateway = start_module_gateway(**new_keys_env(supabase_new_keys))
    supabase_new_keys.site_url = f"{gateway.url}/dashboard"
    return gateway


def signed_up(supabase: FakeSupabase) -> tuple[str, str]:
    """A new account's (user id, access token), signed up as supabase-js does with the publishable key."""
    key = supabase.publishable_key
    response = httpx.post(
        f"{supabase.url}/auth/v1/signup",
        json={"email": new_email(), "password": PASSWORD},
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    session = response.json()
    return session["user"]["id"], session["access_token"]


# -- settings ---------------------------------------------------------------------------------


def test_the_current_names_are_read_and_win_over_the_legacy_ones() -> None:
    current = load({"SUPABASE_SECRET_KEY": "sb_secret_new", "SUPABASE_PUBLISHABLE_KEY": "sb_publishable_new"})
    assert (current.supabase_service_role_key, current.supabase_anon_key) == (
        "sb_secret_new",
        "sb_publishable_new",
    )
    both = load(
        {
            "SUPABASE_SECRET_KEY": "sb_secret_new",
            "SUPABASE_SERVICE_ROLE_KEY": LEGACY_SERVICE_ROLE,
            "SUPABASE_PUBLISHABLE_KEY": "sb_publishable_new",
            "SUPABASE_ANON_KEY": LEGACY_ANON,
        }
    )
    assert (both.supabase_service_role_key, both.supabase_anon_key) == ("sb_secret_new", "sb_publishable_new")


def test_either_format_is_read_under_either_name() -> None:
    legacy_under_new = load(
        {"SUPABASE_SECRET_KEY": LEGACY_SERVICE_ROLE, "SUPABASE_PUBLISHABLE_KEY": LEGACY_ANON}
    )
    assert (legacy_under_new.supabase_service_role_key, legacy_under_new.supabase_anon_key) == (
        LEGACY_SERVICE_ROLE,
        LEGACY_ANON,
    )
    new_under_legacy = load(
        {"SUPABASE_SERVICE_ROLE_KEY": "sb_secret_x", "SUPABASE_ANON_KEY": "sb_publishable_x"}
    )
    assert (new_under_legacy.supabase_service_role_key, new_under_legacy.supabase_anon_key) == (
        "sb_secret_x",
        "sb_publishable_x",
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SUPABASE_PUBLISHABLE_KEY", "sb_secret_oops", "holds a secret key"),
        ("SUPABASE_ANON_KEY", LEGACY_SERVICE_ROLE, "holds a secret key"),
        ("SUPABASE_SECRET_KEY", "sb_publishable_oops", "holds a publishable key"),
        ("SUPABASE_SERVICE_ROLE_KEY", LEGACY_ANON, "holds a publishable key"),
    ],
)
def test_a_key_of_the_other_kind_is_refused_by_name_and_never_repeated(
    name: str, value: str, says: str
) -> None:
    """A secret key where the publishable one belongs would reach every browser through /api/config."""
    with pytest.raises(SettingsError) as raised:
        load({name: value})
    assert name in raised.value.message and says in raised.value.message
    assert value not in raised.value.message


# -- the gateway's rules, as the emulation enforces them -----------------------------------------


def rpc(supabase: FakeSupabase, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{supabase.url}/rest/v1/rpc/cloudgpt_list_api_keys",
        json={"p_user_id": str(uuid.uuid4())},
        headers=headers,
    )


def test_the_secret_key_in_apikey_is_the_service_role(supabase_new_keys: FakeSupabase) -> None:
    secret = supabase_new_keys.secret_key
    assert rpc(supabase_new_keys, {"apikey": secret}).json() == []
    # The SDKs send it in Authorization too: the gateway takes it as the API key, not as a user's token.
    assert rpc(supabase_new_keys, {"apikey": secret, "Authorization": f"Bearer {secret}"}).json() == []


def test_the_publishable_key_is_the_anon_role(supabase_new_keys: FakeSupabase) -> None:
    response = rpc(supabase_new_keys, {"apikey": supabase_new_keys.publishable_key})
    assert response.status_code == 401  # PostgREST's answer to anon lacking the privilege
    assert response.json()["code"] == "42501"


def test_an_sb_key_in_authorization_must_be_the_apikey(supabase_new_keys: FakeSupabase) -> None:
    headers = {
        "apikey": supabase_new_keys.publishable_key,
        "Authorization": f"Bearer {supabase_new_keys.secret_key}",
    }
    response = rpc(supabase_new_keys, headers)
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid API key"


def test_a_secret_key_from_a_browser_is_refused(supabase_new_keys: FakeSupabase) -> None:
    secret = supabase_new_keys.secret_key
    refused = rpc(supabase_new_keys, {"apikey": secret, **BROWSER})
    assert refused.status_code == 401
    assert refused.json()["message"] == "Forbidden use of secret API key in browser"
    signup = httpx.post(
        f"{supabase_new_keys.url}/auth/v1/signup",
        json={"email": new_email(), "password": PASSWORD},
        headers={"apikey": secret, **BROWSER},
    )
    assert signup.status_code == 401
    assert (
        rpc(supabase_new_keys, {"apikey": supabase_new_keys.publishable_key, **BROWSER}).json()["code"]
        == "42501"
    )


def test_legacy_keys_are_refused_where_they_are_disabled(
    supabase_new_keys: FakeSupabase, supabase: FakeSupabase
) -> None:
    for legacy in (supabase_new_keys.service_role_key, supabase_new_keys.anon_key):
        response = rpc(supabase_new_keys, {"apikey": legacy, "Authorization": f"Bearer {legacy}"})
        assert response.status_code == 401
        assert response.json()["message"] == "Legacy API keys are disabled"
    # A project that still has them takes both kinds.
    assert rpc(supabase, {"apikey": supabase.service_role_key}).json() == []
    assert rpc(supabase, {"apikey": supabase.secret_key}).json() == []


def test_auth_signs_access_tokens_es256_with_the_key_its_jwks_publishes(
    supabase_new_keys: FakeSupabase,
) -> None:
    _, token = signed_up(supabase_new_keys)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "ec-1", "typ": "JWT"}
    jwks = httpx.get(f"{supabase_new_keys.url}/auth/v1/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(jwks)["ec-1"].key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="authenticated")
    assert claims["iss"] == f"{supabase_new_keys.url}/auth/v1"


# -- CloudGPT on such a project ------------------------------------------------------------------


def test_the_whole_key_lifecycle_with_only_new_keys(
    new_keys_gateway: Gateway, supabase_new_keys: FakeSupabase
) -> None:
    user, token = signed_up(supabase_new_keys)
    session = {"Authorization": f"Bearer {token}"}
    created = new_keys_gateway.client.post("/api/keys", json={"name": "new keys"}, headers=session)
    assert created.status_code == 201, created.text
    key = created.json()
    assert [k["id"] for k in new_keys_gateway.client.get("/api/keys", headers=session).json()["data"]] == [
        key["id"]
    ]
    assert chat(new_keys_gateway, key["key"]) == 200
    assert new_keys_gateway.client.delete(f"/api/keys/{key['id']}", headers=session).status_code == 200
    assert chat(new_keys_gateway, key["key"]) == 401
    assert new_keys_gateway.client.get("/api/keys", headers=session).json()["data"] == []
    # Without SUPABASE_JWT_SECRET, an HS256 token (even one signed with the legacy secret) is not accepted.
    forged = access_token(user, f"{supabase_new_keys.url}/auth/v1", key=JWT_SECRET)
    refused = new_keys_gateway.client.get("/api/keys", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"


def test_the_cli_manages_keys_with_only_the_secret_key(
    new_keys_gateway: Gateway, supabase_new_keys: FakeSupabase, postgres: Postgres
) -> None:
    env = {"SUPABASE_URL": supabase_new_keys.url, "SUPABASE_SECRET_KEY": supabase_new_keys.secret_key}
    user = postgres.new_user()
    created = cli(env, "create", "--user", user, "--name", "terminal")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert (
        new_keys_gateway.client.post(
            "/api/chat", json=CHAT, headers={"Authorization": f"Bearer {key['key']}"}
        ).status_code
        == 200
    )
    assert [k["id"] for k in json.loads(cli(env, "list", "--user", user).stdout)["data"]] == [key["id"]]
    assert cli(env, "revoke", "--user", user, key["id"]).returncode == 0


def test_the_pages_are_given_the_publishable_key(
    new_keys_gateway: Gateway, supabase_new_keys: FakeSupabase
) -> None:
    auth = new_keys_gateway.client.get("/api/config").json()["auth"]
    assert auth["mode"] == "supabase"
    assert auth["supabase"] == {"url": supabase_new_keys.url, "anonKey": supabase_new_keys.publishable_key}
    assert supabase_new_keys.secret_key not in new_keys_gateway.client.get("/api/config").text


def test_the_dashboard_signs_up_and_makes_a_working_key_with_the_publishable_key(
    browser: Browser, new_keys_gateway: Gateway
) -> None:
    email = new_email()
    open_dashboard(browser, new_keys_gateway)
    fill(browser, email, PASSWORD)
    browser.find("#sign-up").click()
    signed_in_as(browser, email)
    key = create_key(browser, "from the dashboard")
    assert chat(new_keys_gateway, key) == 200
