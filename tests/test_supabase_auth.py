"""The Supabase Auth emulator: GoTrue's answers to what supabase-js sends, and tokens the gateway accepts.

The browser tests drive it through supabase-js; these show each flow at the HTTP
level, in GoTrue's shapes, on the real PostgreSQL `auth` schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest

from tests.conftest import Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import JWT_SECRET
from tests.postgres import Postgres

PASSWORD = "correct horse battery"


class Auth:
    """A client speaking to the emulator as supabase-js does: apikey, API version header."""

    def __init__(self, supabase: FakeSupabase) -> None:
        self.supabase = supabase
        self.http = httpx.Client(
            base_url=f"{supabase.url}/auth/v1",
            headers={"apikey": supabase.anon_key, "X-Supabase-Api-Version": "2024-01-01"},
            timeout=10,
        )

    def signup(self, email: str, password: str = PASSWORD, **extra: object) -> httpx.Response:
        return self.http.post("/signup", json={"email": email, "password": password, **extra})

    def signin(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.http.post("/token?grant_type=password", json={"email": email, "password": password})

    def as_user(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def follow(self, link: str) -> dict[str, str]:
        """Open a mailed link: its redirect's fragment, parsed."""
        response = httpx.get(link, follow_redirects=False)
        assert response.status_code == 303
        return dict(parse_qsl(urlsplit(response.headers["Location"]).fragment))


@pytest.fixture
def auth(supabase: FakeSupabase) -> Iterator[Auth]:
    client = Auth(supabase)
    yield client
    supabase.auth.confirm_email = False
    client.http.close()


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def test_signing_up_gives_a_session_whose_token_manages_keys(
    auth: Auth, supabase_gateway: Gateway, postgres: Postgres
) -> None:
    email = new_email()
    response = auth.signup(email.upper())
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["token_type"] == "bearer" and session["expires_in"] == 3600
    assert session["user"]["email"] == email and session["user"]["email_confirmed_at"]
    claims = jwt.decode(session["access_token"], JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["iss"] == f"{auth.supabase.url}/auth/v1"
    assert claims["sub"] == session["user"]["id"] and claims["role"] == "authenticated"
    assert claims["is_anonymous"] is False and claims["session_id"]

    with postgres.connect() as db:
        (hashed,) = db.execute(
            "select encrypted_password from auth.users where email = %s", (email,)
        ).fetchone()
    assert hashed.startswith("$2b$10$") and PASSWORD not in hashed

    headers = auth.as_user(session["access_token"])
    created = supabase_gateway.client.post("/api/keys", json={"name": "from the dashboard"}, headers=headers)
    assert created.status_code == 201, created.text
    listed = supabase_gateway.client.get("/api/keys", headers=headers).json()["data"]
    assert [key["name"] for key in listed] == ["from the dashboard"]


def test_signing_in_with_the_password_and_reading_the_user(auth: Auth) -> None:
    email = new_email()
    auth.signup(email)
    session = auth.signin(email).json()
    user = auth.http.get("/user", headers=auth.as_user(session["access_token"]))
    assert user.status_code == 200
    assert user.json()["email"] == email and user.json()["last_sign_in_at"]


def test_a_wrong_password_is_gotrues_invalid_credentials_in_both_error_shapes(auth: Auth) -> None:
    email = new_email()
    auth.signup(email)
    response = auth.signin(email, "not the password")
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_credentials", "message": "Invalid login credentials"}
    assert response.headers["X-Supabase-Api-Version"] == "2024-01-01"
    legacy = httpx.post(
        f"{auth.supabase.url}/auth/v1/token?grant_type=password",
        json={"email": email, "password": "not the password"},
        headers={"apikey": auth.supabase.anon_key},
    )
    assert legacy.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }


@pytest.mark.parametrize(
    ("email", "password", "status", "code"),
    [
        ("taken", PASSWORD, 422, "user_already_exists"),
        ("new", "12345", 422, "weak_password"),
        ("new", "", 422, "validation_failed"),
        ("not-an-address", PASSWORD, 400, "email_address_invalid"),
    ],
)
def test_sign_up_refusals(auth: Auth, email: str, password: str, status: int, code: str) -> None:
    taken = new_email()
    auth.signup(taken)
    address = {"taken": taken, "new": new_email()}.get(email, email)
    response = auth.signup(address, password)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_refresh_tokens_rotate_and_are_used_once(auth: Auth) -> None:
    email = new_email()
    first = auth.signup(email).json()
    refreshed = auth.http.post(
        "/token?grant_type=refresh_token", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != first["refresh_token"]
    again = auth.http.post("/token?grant_type=refresh_token", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 400
    assert again.json()["code"] == "refresh_token_already_used"


def test_signing_out_ends_every_session(auth: Auth) -> None:
    email = new_email()
    one, two = auth.signup(email).json(), auth.signin(email).json()
    out = auth.http.post("/logout?scope=global", headers=auth.as_user(one["access_token"]))
    assert out.status_code == 204
    for session in (one, two):
        user = auth.http.get("/user", headers=auth.as_user(session["access_token"]))
        assert user.status_code == 403 and user.json()["code"] == "session_not_found"
        refresh = auth.http.post(
            "/token?grant_type=refresh_token", json={"refresh_token": session["refresh_token"]}
        )
        assert refresh.json()["code"] == "refresh_token_not_found"


def test_with_email_confirmation_on_sign_up_waits_for_the_mailed_link(
    auth: Auth, supabase: FakeSupabase
) -> None:
    supabase.auth.confirm_email = True
    email = new_email()
    response = auth.signup(email)
    assert response.status_code == 200
    assert "access_token" not in response.json()  # supabase-js: a user, no session
    assert response.json()["confirmation_sent_at"] and response.json()["email_confirmed_at"] is None
    assert auth.signin(email).json()["code"] == "email_not_confirmed"

    (mail,) = supabase.auth.mails_to(email)
    fragment = auth.follow(mail.link)
    assert fragment["type"] == "signup" and fragment["token_type"] == "bearer"
    assert jwt.decode(fragment["access_token"], options={"verify_signature": False})["email"] == email
    assert auth.signin(email).status_code == 200
    assert "error_code=otp_expired" in httpx.get(mail.link).headers["Location"]  # a link works once


def test_a_second_sign_up_with_confirmation_on_does_not_reveal_the_account(
    auth: Auth, supabase: FakeSupabase
) -> None:
    email = new_email()
    existing = auth.signup(email).json()["user"]["id"]
    supabase.auth.confirm_email = True
    again = auth.signup(email)
    assert again.status_code == 200
    assert again.json()["id"] != existing and again.json()["identities"] == []


def test_a_password_reset_mails_a_link_that_signs_in_to_set_a_new_password(
    auth: Auth, supabase: FakeSupabase
) -> None:
    email = new_email()
    auth.signup(email)
    assert (
        auth.http.post("/recover?redirect_to=http://127.0.0.1:1/dashboard", json={"email": email}).json()
        == {}
    )
    assert auth.http.post("/recover", json={"email": new_email()}).status_code == 200  # unknown: same answer
    (mail,) = [m for m in supabase.auth.mails_to(email) if m.type == "recovery"]
    assert "redirect_to=http%3A%2F%2F127.0.0.1%3A1%2Fdashboard" in mail.link
    fragment = auth.follow(mail.link)
    assert fragment["type"] == "recovery"
    changed = auth.http.put(
        "/user", json={"password": "a new password"}, headers=auth.as_user(fragment["access_token"])
    )
    assert changed.status_code == 200
    assert auth.signin(email).status_code == 400
    assert auth.signin(email, "a new password").status_code == 200


def test_a_magic_link_signs_in(auth: Auth, supabase: FakeSupabase) -> None:
    email = new_email()
    auth.signup(email)
    assert auth.http.post("/otp", json={"email": email, "create_user": True}).json() == {}
    (mail,) = [m for m in supabase.auth.mails_to(email) if m.type == "magiclink"]
    fragment = auth.follow(mail.link)
    assert fragment["type"] == "magiclink"
    user = auth.http.get("/user", headers=auth.as_user(fragment["access_token"]))
    assert user.json()["email"] == email


def test_a_magic_link_for_an_unknown_address_signs_up_unless_told_not_to(
    auth: Auth, supabase: FakeSupabase
) -> None:
    refused = auth.http.post("/otp", json={"email": new_email(), "create_user": False})
    assert refused.status_code == 422 and refused.json()["code"] == "otp_disabled"
    email = new_email()
    auth.http.post("/otp", json={"email": email, "create_user": True})
    (mail,) = supabase.auth.mails_to(email)
    assert mail.type == "signup"
    assert auth.follow(mail.link)["access_token"]


def test_pages_on_another_origin_may_call_it(supabase: FakeSupabase) -> None:
    response = httpx.options(
        f"{supabase.url}/auth/v1/token?grant_type=password",
        headers={
            "Origin": "http://127.0.0.1:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "apikey, content-type, x-client-info, x-supabase-api-version",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-supabase-api-version" in response.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("apikey", [None, "not-the-key"])
def test_every_call_but_the_mailed_link_needs_the_projects_key(
    supabase: FakeSupabase, apikey: str | None
) -> None:
    headers = {"apikey": apikey} if apikey else {}
    response = httpx.post(
        f"{supabase.url}/auth/v1/signup", json={"email": new_email(), "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 401


def test_an_oauth_button_signs_in_through_the_providers_stand_in(auth: Auth, supabase: FakeSupabase) -> None:
    supabase.auth.oauth_email = email = new_email()
    browser = httpx.Client(follow_redirects=False)
    location = f"{supabase.url}/auth/v1/authorize?provider=github&redirect_to=http://127.0.0.1:1/dashboard"
    for _ in range(3):  # Auth -> the provider -> Auth's callback -> the page
        location = browser.get(location).headers["Location"]
    page, _, fragment = location.partition("#")
    assert page == "http://127.0.0.1:1/dashboard"
    user = auth.http.get("/user", headers=auth.as_user(dict(parse_qsl(fragment))["access_token"])).json()
    assert user["email"] == email and user["app_metadata"]["provider"] == "github"


def test_a_provider_the_project_has_not_enabled_is_refused(auth: Auth, supabase: FakeSupabase) -> None:
    response = httpx.get(f"{supabase.url}/auth/v1/authorize?provider=gitlab")
    assert response.status_code == 400
    assert response.json()["error_code"] == "validation_failed"
