"""The Supabase schema itself, on the real PostgreSQL: only service_role reaches keys."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from lib.keys.format import key_hash, new_key, new_key_id, shown
from tests.fakes.supabase import FakeSupabase
from tests.postgres import Postgres

CALLS = {
    "cloudgpt_create_api_key": "select public.cloudgpt_create_api_key(%s, %s::uuid, 'n', 'cgpt_abcd...', %s, 25)",
    "cloudgpt_list_api_keys": "select * from public.cloudgpt_list_api_keys(%s::uuid)",
    "cloudgpt_delete_api_key": "select public.cloudgpt_delete_api_key(%s::uuid, 'key_xxxxxxxxxxxxxxxxxxxx')",
    "cloudgpt_verify_api_key": "select public.cloudgpt_verify_api_key(%s, 60)",
    "cloudgpt_verify_api_key_with_controls": "select public.cloudgpt_verify_api_key_with_controls(%s, 60)",
    "cloudgpt_update_api_key": (
        "select public.cloudgpt_update_api_key(%s::uuid, 'key_xxxxxxxxxxxxxxxxxxxx', '{\"disabled\": true}')"
    ),
}


def as_role(db: psycopg.Connection, role: str, user: str) -> None:
    """Switch a transaction to an API role, with the claims PostgREST would set."""
    db.execute(psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(role)))
    db.execute(
        "select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": user, "role": role}),)
    )


@pytest.fixture
def stored_key(postgres: Postgres) -> tuple[str, str]:
    """(user, key) with the key stored as the service role would."""
    user, key = postgres.new_user(), new_key()
    with postgres.connect() as db:
        db.execute(
            "select public.cloudgpt_create_api_key(%s, %s, 'mine', %s, %s, 25)",
            (new_key_id(), user, shown(key), key_hash(key)),
        )
    return user, key


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_read_or_write_the_table(postgres: Postgres, stored_key, role: str) -> None:
    user, _ = stored_key
    for statement in (
        "select * from public.api_keys",
        "update public.api_keys set name = 'x'",
        "delete from public.api_keys",
        f"insert into public.api_keys (id, user_id, name, prefix, key_hash) values "
        f"('{new_key_id()}', '{user}', 'n', 'p', '{'0' * 64}')",
    ):
        with postgres.connect() as db, db.transaction():
            as_role(db, role, user)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_row_level_security_hides_every_row_even_when_granted(
    postgres: Postgres, stored_key, role: str
) -> None:
    """Were the table ever granted (as Supabase's defaults do for new tables), no policy lets a row out."""
    user, _ = stored_key
    with postgres.connect() as db:
        with db.transaction(force_rollback=True):
            db.execute(
                psycopg.sql.SQL("grant select on public.api_keys to {}").format(psycopg.sql.Identifier(role))
            )
            as_role(db, role, user)
            assert db.execute("select count(*) from public.api_keys").fetchone() == (0,)
        assert db.execute(
            "select relrowsecurity from pg_class where oid = 'public.api_keys'::regclass"
        ).fetchone() == (True,)
        assert db.execute("select count(*) from pg_policies where tablename = 'api_keys'").fetchone() == (0,)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("function", CALLS)
def test_api_roles_cannot_execute_the_functions(
    postgres: Postgres, stored_key, role: str, function: str
) -> None:
    user, key = stored_key
    args = {
        "cloudgpt_create_api_key": (new_key_id(), user, key_hash(new_key())),
        "cloudgpt_verify_api_key": (key_hash(key),),
        "cloudgpt_verify_api_key_with_controls": (key_hash(key),),
    }.get(function, (user,))
    with postgres.connect() as db, db.transaction():
        as_role(db, role, user)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(CALLS[function], args)


def test_through_the_rest_api_anon_and_users_are_refused(supabase: FakeSupabase, stored_key) -> None:
    """supabase-py, unchanged, as a browser would hold it: the anon key, then a user's session."""
    user, key = stored_key
    client = create_client(
        supabase.url, supabase.anon_key, ClientOptions(httpx_client=httpx.Client(timeout=5))
    )
    with pytest.raises(APIError) as anon:
        client.rpc(
            "cloudgpt_verify_api_key", {"p_key_hash": key_hash(key), "p_touch_after_seconds": 60}
        ).execute()
    assert anon.value.code == "42501"
    user_token = supabase.token("authenticated", sub=user, aud="authenticated")
    client.postgrest.auth(user_token)
    with pytest.raises(APIError) as authenticated:
        client.rpc("cloudgpt_list_api_keys", {"p_user_id": user}).execute()
    assert authenticated.value.code == "42501"


def test_verify_touches_last_used_at_most_once_a_minute(postgres: Postgres, stored_key) -> None:
    user, key = stored_key
    hashed = key_hash(key)
    with postgres.connect() as db:  # autocommit: every statement its own transaction, its own now()
        db.execute("set role service_role")

        def verify(key_hash: str = hashed) -> object:
            return db.execute("select public.cloudgpt_verify_api_key(%s, 60)", (key_hash,)).fetchone()[0]

        def last_used() -> object:
            return db.execute(
                "select last_used_at from public.api_keys where key_hash = %s", (hashed,)
            ).fetchone()[0]

        key_id = db.execute("select id from public.api_keys where key_hash = %s", (hashed,)).fetchone()[0]
        assert last_used() is None
        assert verify() == {"user_id": user, "key_id": key_id}
        first = last_used()
        assert first is not None
        assert verify()["user_id"] == user
        assert last_used() == first  # within the minute: not written again
        db.execute(
            "update public.api_keys set last_used_at = last_used_at - interval '61 seconds' where key_hash = %s",
            (hashed,),
        )
        verify()
        assert last_used() >= first  # a minute old: written again
        assert verify("0" * 64) is None


def test_a_key_from_before_controls_verifies_with_none_and_changes_raise_its_version(
    postgres: Postgres, stored_key
) -> None:
    """`stored_key` is created by the first migration's function, as an old deployment would."""
    user, key = stored_key
    with postgres.connect() as db:
        db.execute("set role service_role")
        found = db.execute(
            "select public.cloudgpt_verify_api_key_with_controls(%s, 60)", (key_hash(key),)
        ).fetchone()[0]
        assert found["user_id"] == user
        assert {name: found[name] for name in ("expires", "disabled", "models", "limit_chat", "quota_period")} == {
            "expires": None, "disabled": False, "models": None, "limit_chat": None, "quota_period": None,
        }  # fmt: skip
        changed = db.execute(
            "select public.cloudgpt_update_api_key(%s, %s, %s)",
            (
                user,
                found["id"],
                json.dumps(
                    {"models": ["openai"], "limit_chat": 3, "quota_period": "day", "quota_requests": 5}
                ),
            ),
        ).fetchone()[0]
        assert (changed["models"], changed["limit_chat"], changed["version"]) == (["openai"], 3, 2)
        assert changed["name"] == "mine"  # what was not named stays
        cleared = db.execute(
            "select public.cloudgpt_update_api_key(%s, %s, %s)",
            (user, found["id"], json.dumps({"models": None})),
        ).fetchone()[0]
        assert (cleared["models"], cleared["limit_chat"], cleared["version"]) == (None, 3, 3)
        other = postgres.new_user()
        assert db.execute(
            "select public.cloudgpt_update_api_key(%s, %s, '{}')", (other, found["id"])
        ).fetchone() == (None,)


@pytest.mark.parametrize(
    "changes",
    [{"limit_chat": 0}, {"quota_requests": -1, "quota_period": "day"}, {"quota_period": "week", "quota_tokens": 5},
     {"quota_period": "day"}, {"models": []}],
)  # fmt: skip
def test_the_table_refuses_controls_out_of_bounds(postgres: Postgres, stored_key, changes: dict) -> None:
    user, key = stored_key
    with postgres.connect() as db:
        db.execute("set role service_role")
        key_id = db.execute(
            "select id from public.api_keys where key_hash = %s", (key_hash(key),)
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(
                "select public.cloudgpt_update_api_key(%s, %s, %s)", (user, key_id, json.dumps(changes))
            )
