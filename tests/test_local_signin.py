"""Signing in to the embedded default: a one-time link from the terminal, an access token for /api/keys."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from tests.conftest import AS_ON_VERCEL, Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import JWT_SECRET, SIGNIN_LINK, fresh_code, print_signin, printed_code


def redeem(gateway: Gateway, code: str):
    return gateway.client.post("/api/session", json={"code": code})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("local-signin"))


@pytest.fixture(scope="module")
def local(start_module_gateway: Callable[..., Gateway], data_dir: str) -> Gateway:
    """The embedded default: no Supabase, not on Vercel."""
    return start_module_gateway(CLOUDGPT_DATA_DIR=data_dir)


@pytest.fixture(scope="module")
def token(local: Gateway, data_dir: str) -> str:
    return redeem(local, fresh_code(data_dir)).json()["accessToken"]


def test_the_printed_link_signs_in_once_and_its_token_manages_keys(local: Gateway) -> None:
    code = printed_code(local)
    first = redeem(local, code)
    assert first.status_code == 200, first.text
    session = first.json()
    assert session["user"]["email"] is None
    assert session["expiresAt"] > time.time() + 3600

    created = local.client.post("/api/keys", json={"name": "laptop"}, headers=bearer(session["accessToken"]))
    assert created.status_code == 201, created.text
    listed = local.client.get("/api/keys", headers=bearer(session["accessToken"])).json()["data"]
    assert [key["name"] for key in listed] == ["laptop"]

    again = redeem(local, code)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_code"


def test_the_operator_is_one_user_across_links(local: Gateway, data_dir: str) -> None:
    users = {redeem(local, fresh_code(data_dir)).json()["user"]["id"] for _ in range(2)}
    assert len(users) == 1


def test_a_link_printed_by_another_process_is_accepted(local: Gateway, data_dir: str) -> None:
    response = redeem(local, fresh_code(data_dir))
    assert response.status_code == 200, response.text


def test_a_code_redeemed_by_many_at_once_opens_one_session(local: Gateway, data_dir: str) -> None:
    code = fresh_code(data_dir)
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: redeem(local, code).status_code, range(8)))
    assert statuses == [200] + [401] * 7


def test_an_expired_code_is_refused(local: Gateway, data_dir: str) -> None:
    code = fresh_code(data_dir)
    with sqlite3.connect(Path(data_dir) / "signin.sqlite3") as db:  # 15 minutes later
        db.execute("UPDATE signin_codes SET expires = expires - 15 * 60")
    response = redeem(local, code)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_code"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "guessed-" + "a" * 40}, 401, "invalid_code"),
        ({"code": ""}, 400, "invalid_value"),
        ({}, 400, "missing_field"),
        ({"code": 12345}, 400, "invalid_value"),
    ],
)
def test_bad_codes_are_refused(local: Gateway, body: dict, status: int, code: str) -> None:
    response = local.client.post("/api/session", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_codes_and_tokens_stay_out_of_files_and_the_log(local: Gateway, data_dir: str) -> None:
    code = fresh_code(data_dir)
    token = redeem(local, code).json()["accessToken"]
    local.client.get("/api/keys", headers=bearer(token))
    files = [path for path in Path(data_dir).iterdir() if path.is_file()]
    stored = b"".join(path.read_bytes() for path in files)
    assert code.encode() not in stored
    assert token.encode() not in stored
    local.log.seek(0)
    log = local.log.read().decode()
    assert code not in log and token not in log
    assert (Path(data_dir) / "local-signin.json").stat().st_mode & 0o777 == 0o600


def forged(data_dir: str, secret: str | None = None, **claims: object) -> str:
    """A token shaped like the server's own, signed with its secret unless another is given."""
    identity = json.loads((Path(data_dir) / "local-signin.json").read_text())
    now = int(time.time())
    payload = {"iss": "cloudgpt-local", "sub": identity["operator"], "aud": "authenticated"}
    payload |= {"role": "authenticated", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, secret or identity["secret"], algorithm="HS256")


@pytest.mark.parametrize(
    ("kind", "secret", "claims"),
    [
        ("another secret", "another-local-secret-of-thirty-two-bytes", {}),
        ("expired", None, {"exp": int(time.time()) - 10}),
        ("wrong audience", None, {"aud": "anon"}),
    ],
)
def test_tokens_the_server_did_not_issue_are_refused(
    local: Gateway, token: str, data_dir: str, kind: str, secret: str | None, claims: dict
) -> None:
    response = local.client.get("/api/keys", headers=bearer(forged(data_dir, secret, **claims)))
    assert response.status_code == 401, kind
    assert response.json()["error"]["code"] == "invalid_token"


@pytest.fixture(scope="module")
def elsewhere(
    start_module_gateway: Callable[..., Gateway], supabase: FakeSupabase, data_dir: str
) -> dict[str, Gateway]:
    """Gateways on the same data directory where sign-in is not local: on Vercel, with Supabase."""
    return {
        "vercel": start_module_gateway(
            AS_ON_VERCEL, CLOUDGPT_DATA_DIR=data_dir, VERCEL="1", SUPABASE_JWT_SECRET=JWT_SECRET
        ),
        "supabase": start_module_gateway(
            CLOUDGPT_DATA_DIR=data_dir,
            SUPABASE_URL=supabase.url,
            SUPABASE_ANON_KEY=supabase.anon_key,
            SUPABASE_SERVICE_ROLE_KEY=supabase.service_role_key,
            SUPABASE_JWT_SECRET=JWT_SECRET,
        ),
    }


@pytest.mark.parametrize("where", ["vercel", "supabase"])
def test_local_tokens_and_codes_are_refused_where_sign_in_is_not_local(
    elsewhere: dict[str, Gateway], token: str, data_dir: str, where: str
) -> None:
    gateway = elsewhere[where]
    response = gateway.client.get("/api/keys", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"
    redeemed = redeem(gateway, fresh_code(data_dir))
    assert (redeemed.status_code, redeemed.json()["error"]["code"]) == (404, "route_not_found")
    ended = gateway.client.delete("/api/session", headers=bearer(token))  # signs out Supabase sessions here
    assert (ended.status_code, ended.json()["error"]["code"]) == (401, "invalid_token")


def test_the_link_is_not_printed_where_sign_in_is_not_local(elsewhere: dict[str, Gateway]) -> None:
    for gateway in elsewhere.values():
        gateway.log.seek(0)
        assert "sign-in" not in gateway.log.read().decode()


def test_an_unusable_data_directory_is_a_503_and_the_server_says_why(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(tmp_path / "a-file" / "data"))
    gateway.log.seek(0)
    assert (
        "Dashboard sign-in is unavailable: CLOUDGPT_DATA_DIR cannot be written" in gateway.log.read().decode()
    )
    response = redeem(gateway, "some-code")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "signin_store_unavailable"


def test_make_signin_refuses_where_sign_in_is_not_local(data_dir: str) -> None:
    done = print_signin(CLOUDGPT_DATA_DIR=data_dir, SUPABASE_URL="https://project.supabase.co")
    assert done.returncode == 1
    assert "only for the embedded default" in done.stderr and "#code=" not in done.stdout


def test_signing_out_ends_the_session_in_every_process_at_once(local: Gateway, data_dir: str) -> None:
    token = redeem(local, fresh_code(data_dir)).json()["accessToken"]
    other = redeem(local, fresh_code(data_dir)).json()["accessToken"]  # another tab's sign-in
    assert local.client.get("/api/keys", headers=bearer(token)).status_code == 200
    ended = local.client.delete("/api/session", headers=bearer(token))
    assert ended.status_code == 204, ended.text
    chat = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    for refused in (
        local.client.get("/api/keys", headers=bearer(token)),
        local.client.post("/api/chat", json=chat, headers=bearer(token)),
    ):
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "invalid_token"
        assert "session has ended" in refused.json()["error"]["message"]
    assert local.client.get("/api/keys", headers=bearer(other)).status_code == 200  # only that session
    assert local.client.delete("/api/session", headers=bearer(token)).status_code == 204  # twice is fine


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_credentials"), (bearer("cgpt_" + "a" * 40), "invalid_token")],
)
def test_sign_out_without_a_session_token_is_a_401(local: Gateway, headers: dict, code: str) -> None:
    response = local.client.delete("/api/session", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code


def test_a_new_local_secret_ends_every_token_at_once(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(tmp_path))
    token = redeem(gateway, fresh_code(str(tmp_path))).json()["accessToken"]
    assert gateway.client.get("/api/keys", headers=bearer(token)).status_code == 200
    (tmp_path / "local-signin.json").unlink()  # what an operator does to end every session
    response = gateway.client.get("/api/keys", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"
    fresh = redeem(gateway, fresh_code(str(tmp_path))).json()["accessToken"]  # signed with the new secret
    assert gateway.client.get("/api/keys", headers=bearer(fresh)).status_code == 200


def test_make_signin_prints_a_link_to_the_port_the_server_runs_on(local: Gateway, data_dir: str) -> None:
    done = print_signin(CLOUDGPT_DATA_DIR=data_dir, PORT="3000")  # the server runs on another port
    match = SIGNIN_LINK.search(done.stdout)
    assert match, done.stdout + done.stderr
    assert match.group(1).startswith(f"{local.url}/dashboard#code=")
    assert redeem(local, match.group(2)).status_code == 200
