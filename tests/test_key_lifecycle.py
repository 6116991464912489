"""Keys across processes: revocation delay, the CLI, per-user limits, failures, and no plaintext anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lib.keys.format import key_hash, new_key
from tests.conftest import AS_ON_VERCEL, ROOT, Gateway
from tests.fakes.supabase import FakeSupabase
from tests.key_stores import Store, store_env
from tests.postgres import Postgres
from tests.test_limits import inside_one_window

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hello"}]}


def chat(gateway: Gateway, key: str) -> int:
    return gateway.client.post("/api/chat", json=CHAT, headers={"Authorization": f"Bearer {key}"}).status_code


def test_a_deleted_key_stops_working_on_other_instances_at_once(
    store: Store, start_gateway: Callable[..., Gateway]
) -> None:
    """Two instances on one store with the default 30 s verification cache: the other
    instance reads the key's marker with its rate-limit count and refuses it at its next request."""
    first, second = start_gateway(**store.env), start_gateway(**store.env)
    token = store.token(store.new_user())
    key = first.client.post("/api/keys", json={}, headers=store.auth(token)).json()
    assert chat(second, key["key"]) == 200  # now cached on the second instance
    assert first.client.delete(f"/api/keys/{key['id']}", headers=store.auth(token)).status_code == 200
    assert chat(first, key["key"]) == 401
    assert chat(second, key["key"]) == 401


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "CLOUDGPT_"))}
    return subprocess.run(
        [sys.executable, "-m", "lib.keys", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_cli_creates_lists_and_revokes_keys_on_the_configured_store(store: Store) -> None:
    user = store.new_user()
    created = cli(store.env, "create", "--user", user, "--name", "dev")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["name"] == "dev"
    assert chat(store.gateway, key["key"]) == 200
    listed = json.loads(cli(store.env, "list", "--user", user).stdout)["data"]
    assert [(k["id"], k["prefix"]) for k in listed] == [(key["id"], key["key"][:9] + "...")]
    revoked = cli(store.env, "revoke", "--user", user, key["id"])
    assert json.loads(revoked.stdout) == {"deleted": True, "id": key["id"]}
    assert json.loads(cli(store.env, "list", "--user", user).stdout) == {"data": []}
    again = cli(store.env, "revoke", "--user", user, key["id"])
    assert again.returncode == 1
    assert "no key" in again.stderr


def test_the_cli_refuses_a_bad_user_or_name() -> None:
    assert "UUID" in cli({}, "create", "--user", "me").stderr
    assert (
        "Invalid 'name'"
        in cli({}, "create", "--user", "6f1c1a55-3c35-4a52-8a47-1f4b1b8b2f10", "--name", " ").stderr
    )


def test_all_of_a_users_keys_share_one_budget(
    start_gateway: Callable[..., Gateway], tmp_path: Path, backend: dict[str, str]
) -> None:
    env = {"CLOUDGPT_DATA_DIR": str(tmp_path)}
    gateway = start_gateway(**env, **backend, RATE_LIMIT_CHAT_AUTHENTICATED="3")
    user = "0b9f0f4e-7d7e-4c55-9a0e-3d1b3d3f3a11"
    first, second = (json.loads(cli(env, "create", "--user", user).stdout)["key"] for _ in range(2))
    other = json.loads(cli(env, "create", "--user", "5a0e9c3e-2b8f-4d59-a0f8-8a2f0b7d6c22").stdout)["key"]
    inside_one_window()
    assert [chat(gateway, key) for key in (first, second, first, second)] == [200, 200, 200, 429]
    assert chat(gateway, other) == 200


@pytest.mark.parametrize(
    ("route", "body", "default"),
    [
        ("/api/image", {"prompt": "a red fox", "model": "flux"}, "30"),
        ("/api/video", {"prompt": "a red fox", "model": "veo", "duration": 2}, "10"),
    ],
)
def test_media_limits_are_per_user_across_keys(
    start_gateway: Callable[..., Gateway],
    tmp_path: Path,
    backend: dict[str, str],
    route: str,
    body: dict,
    default: str,
) -> None:
    env = {"CLOUDGPT_DATA_DIR": str(tmp_path)}
    user = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
    first, second = (json.loads(cli(env, "create", "--user", user).stdout)["key"] for _ in range(2))
    other = json.loads(cli(env, "create", "--user", "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9").stdout)["key"]
    answer = start_gateway(**env, **backend).client.post(
        route, json=body, headers={"Authorization": f"Bearer {other}"}
    )
    assert answer.status_code == 200
    assert answer.headers["X-RateLimit-Limit"] == default  # the authenticated limit, not the anonymous one

    modality = route.removeprefix("/api/").upper()
    gateway = start_gateway(**env, **backend, **{f"RATE_LIMIT_{modality}_AUTHENTICATED": "2"})
    inside_one_window()
    statuses = [
        gateway.client.post(route, json=body, headers={"Authorization": f"Bearer {key}"}).status_code
        for key in (first, second, first)
    ]
    assert statuses == [200, 200, 429]


def test_on_vercel_without_supabase_keys_are_a_503_not_a_local_file(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(AS_ON_VERCEL, VERCEL="1", SUPABASE_JWT_SECRET="x" * 32)
    from lib.keys.format import new_key

    for response in (
        gateway.client.post("/api/chat", json=CHAT, headers={"Authorization": f"Bearer {new_key()}"}),
        gateway.client.get("/api/keys", headers={"Authorization": f"Bearer {new_key()}"}),
    ):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "key_store_not_configured"


def test_a_slow_key_store_is_a_prompt_503(
    supabase: FakeSupabase, start_gateway: Callable[..., Gateway], postgres: Postgres
) -> None:
    gateway = start_gateway(**store_env("supabase", supabase))
    key = json.loads(cli(store_env("supabase", supabase), "create", "--user", postgres.new_user()).stdout)[
        "key"
    ]
    assert chat(gateway, new_key()) == 401  # the store's client is up: what follows times only the call
    supabase.delay = 1.5
    try:
        started = time.monotonic()
        response = gateway.client.post("/api/chat", json=CHAT, headers={"Authorization": f"Bearer {key}"})
        elapsed = time.monotonic() - started
    finally:
        supabase.delay = 0.0
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "key_store_unavailable"
    assert elapsed < 1.4
    assert chat(gateway, key) == 200  # and fine again once the store is


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_an_unusable_embedded_key_store_is_a_503_not_a_500(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    gateway = start_gateway(CLOUDGPT_DATA_DIR=str(blocker))
    response = gateway.client.post("/api/chat", json=CHAT, headers={"Authorization": f"Bearer {new_key()}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "key_store_unavailable"


def test_the_plaintext_key_is_stored_nowhere(store: Store, request: pytest.FixtureRequest) -> None:
    token = store.token(store.new_user())
    key = store.gateway.client.post("/api/keys", json={"name": "secret"}, headers=store.auth(token)).json()[
        "key"
    ]
    assert chat(store.gateway, key) == 200
    store.gateway.client.get("/api/keys", headers=store.auth(key))
    needle, hashed = key.encode(), key_hash(key).encode()
    places = files_under(Path(store.env["CLOUDGPT_DATA_DIR"]))
    if store.kind == "supabase":
        postgres: Postgres = request.getfixturevalue("postgres")
        with postgres.connect() as db:
            db.execute("checkpoint")
            rows = db.execute("select to_jsonb(k)::text from public.api_keys k").fetchall()
            assert not any(key in row for (row,) in rows)
            assert any(hashed.decode() in row for (row,) in rows)
        places += files_under(postgres.data_dir)
        sent = b"".join(body for _, _, body in request.getfixturevalue("supabase").requests)
        assert needle not in sent
    contents = [p.read_bytes() for p in places]
    assert any(hashed in c for c in contents), "the scan must see where the hash is stored"
    assert not any(needle in c for c in contents)
    store.gateway.log.seek(0)
    assert needle not in store.gateway.log.read()
