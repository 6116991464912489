"""A throwaway PostgreSQL cluster shaped like Supabase's database, for the whole test run.

The server binaries are installed with apt when missing. PostgreSQL refuses to run
as root, so under root (as in CI) the cluster belongs to the `postgres` system user
(or a user created for it). Bootstrapped with Supabase's roles (anon, authenticated,
service_role, authenticator), an `auth` schema with `users` and `auth.uid()`, and
Supabase's default grants on `public`, then the migrations are applied in order.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, free_port

SUPABASE_BOOTSTRAP = """
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login noinherit;
grant anon, authenticated, service_role to authenticator;

create schema auth;
-- auth.users with the columns of GoTrue's own table that its emulator (tests/fakes/supabase_auth.py) uses
create table auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255) unique,
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz
);
create table auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz,
  updated_at timestamptz,
  aal text
);
create table auth.refresh_tokens (
  id bigserial primary key,
  token varchar(255) unique,
  user_id varchar(255),
  revoked boolean,
  session_id uuid references auth.sessions (id) on delete cascade,
  parent varchar(255),
  created_at timestamptz,
  updated_at timestamptz
);
create function auth.uid() returns uuid language sql stable as $$
  select nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid
$$;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"""


def _server_binaries() -> Path:
    """The directory holding initdb and pg_ctl, installing PostgreSQL if need be."""
    for attempt in range(2):
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
            key=lambda p: int(Path(p).parts[-3].split(".")[0]),
        )
        on_path = shutil.which("pg_ctl")
        if found or on_path:
            return Path(found[-1] if found else os.path.realpath(on_path)).parent
        if attempt == 0:
            subprocess.run([str(ROOT / "scripts" / "apt-install"), "postgresql"], check=True)
    raise RuntimeError("PostgreSQL's server binaries are not installed and could not be.")


def _server_user() -> str | None:
    """Who runs the server: None for the current user, else a non-root system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "cloudgpt-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "cloudgpt-pg"], check=True
    )
    return "cloudgpt-pg"


@dataclass
class Postgres:
    port: int
    data_dir: Path

    def dsn(self, user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={user}"

    def connect(self, user: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(user), autocommit=True)

    def new_user(self) -> str:
        """A user in auth.users, as signing up to Supabase makes one."""
        user = str(uuid.uuid4())
        with self.connect() as db:
            db.execute("insert into auth.users (id, email) values (%s, %s)", (user, f"{user}@example.com"))
        return user


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A new cluster, bootstrapped and migrated, removed on exit."""
    binaries = _server_binaries()
    owner = _server_user()
    run_as = ["runuser", "-u", owner, "--"] if owner else []
    base = Path(tempfile.mkdtemp(prefix="cloudgpt-pg-"))
    data = base / "data"
    if owner:
        shutil.chown(base, owner, owner)
    port = free_port()

    def pg(*argv: str) -> None:
        subprocess.run([*run_as, *argv], check=True, capture_output=True, cwd=base)

    pg(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off"
    pg(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-o",
        options,
        "-w",
        "start",
    )
    server = Postgres(port=port, data_dir=data)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with server.connect() as db:
                    db.execute(SUPABASE_BOOTSTRAP)
                    for migration in sorted((ROOT / "supabase" / "migrations").glob("*.sql")):
                        db.execute(migration.read_text())
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server
