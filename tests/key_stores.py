"""Fixtures for keys and accounts: key stores behind a gateway, users, access tokens, sign-in codes.

`store` is parametrized over the embedded SQLite store and Supabase (the emulated
HTTP surface in front of the real PostgreSQL of tests/postgres.py), so one test
shows one behaviour on both.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import ROOT, Gateway
from tests.fakes.supabase import FakeSupabase
from tests.postgres import Postgres

JWT_SECRET = "test-jwt-secret-at-least-32-bytes-long!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, alg: str) -> dict:
    public = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


JWKS = {"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}


@pytest.fixture(scope="session")
def supabase(postgres: Postgres) -> Iterator[FakeSupabase]:
    with FakeSupabase(postgres, JWT_SECRET, JWKS) as fake:
        yield fake


@pytest.fixture(scope="session")
def supabase_new_keys(postgres: Postgres) -> Iterator[FakeSupabase]:
    """A project as Supabase creates one today: publishable and secret keys only (its legacy JWT
    keys disabled), access tokens signed ES256 with a key its JWKS publishes."""
    with FakeSupabase(postgres, JWT_SECRET, JWKS, signing_key=(EC_KEY, "ec-1"), legacy_keys=False) as fake:
        yield fake


def new_keys_env(supabase: FakeSupabase) -> dict[str, str]:
    """CloudGPT on such a project with only the new names and keys: no JWT secret, no legacy key."""
    return {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SECRET_KEY": supabase.secret_key,
        "SUPABASE_PUBLISHABLE_KEY": supabase.publishable_key,
        "RATE_LIMIT_CHAT_AUTHENTICATED": "100000",
        "RATE_LIMIT_ACCOUNT": "100000",
    }


def access_token(
    user: str,
    issuer: str | None = None,
    *,
    alg: str = "HS256",
    key: Any = JWT_SECRET,
    kid: str | None = None,
    **claims: Any,
) -> str:
    """A Supabase Auth access token for `user`; keyword arguments override its claims."""
    now = int(time.time())
    payload = {
        "sub": user,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 3600,
    }
    if issuer:
        payload["iss"] = issuer
    payload |= claims
    kid = kid or {"RS256": "rsa-1", "ES256": "ec-1"}.get(alg)
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


@dataclass
class Store:
    """One key store behind a running gateway."""

    kind: str  # "embedded" or "supabase"
    gateway: Gateway
    env: dict[str, str]
    issuer: str | None
    new_user: Callable[[], str]

    def token(
        self, user: str, *, alg: str = "HS256", key: Any = JWT_SECRET, kid: str | None = None, **claims: Any
    ) -> str:
        """A Supabase Auth access token for `user` from this store's project."""
        return access_token(user, self.issuer, alg=alg, key=key, kid=kid, **claims)

    def auth(self, credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}


def store_env(kind: str, supabase: FakeSupabase | None) -> dict[str, str]:
    env = {
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_CHAT_AUTHENTICATED": "100000",
        "RATE_LIMIT_ACCOUNT": "100000",
    }
    if kind == "supabase":
        env |= {"SUPABASE_URL": supabase.url, "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key}
    return env


SIGNIN_LINK = re.compile(
    r"^Dashboard sign-in \(one use, 15 min\): (http://127\.0\.0\.1:\d+/dashboard#code=(\S+))$", re.M
)


def printed_code(gateway: Gateway) -> str:
    """The code of the sign-in link the server printed when it started."""
    gateway.log.seek(0)
    match = SIGNIN_LINK.search(gateway.log.read().decode())
    assert match, "no sign-in link was printed"
    assert match.group(1).startswith(f"http://127.0.0.1:{gateway.port}/dashboard#code=")
    return match.group(2)


def print_signin(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m lib.devserver --print-signin` (what `make signin` runs) with only `env` set."""
    return subprocess.run(
        [sys.executable, "-m", "lib.devserver", "--print-signin"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def fresh_code(data_dir: str) -> str:
    """A code from `make signin`'s command: another process than the server."""
    done = print_signin(CLOUDGPT_DATA_DIR=data_dir)
    assert done.returncode == 0, done.stderr
    match = SIGNIN_LINK.search(done.stdout)
    assert match, done.stdout
    return match.group(2)


@pytest.fixture(scope="session")
def supabase_gateway(start_session_gateway: Callable[..., Gateway], supabase: FakeSupabase) -> Gateway:
    """The gateway in Supabase mode: keys in PostgreSQL, accounts in the emulated Supabase Auth.

    Mailed links lead to its dashboard, as a project's Site URL would.
    """
    gateway = start_session_gateway(
        **store_env("supabase", supabase),
        SUPABASE_ANON_KEY=supabase.anon_key,
        SUPABASE_AUTH_METHODS="password,magiclink,github",
    )
    supabase.site_url = f"{gateway.url}/dashboard"
    return gateway


@pytest.fixture(scope="session", params=["embedded", "supabase"])
def store(
    request: pytest.FixtureRequest,
    start_session_gateway: Callable[..., Gateway],
    tmp_path_factory: pytest.TempPathFactory,
) -> Store:
    data_dir = {"CLOUDGPT_DATA_DIR": str(tmp_path_factory.mktemp("keys"))}
    if request.param == "embedded":
        env = store_env("embedded", None) | data_dir
        return Store("embedded", start_session_gateway(**env), env, None, lambda: str(uuid.uuid4()))
    fake = request.getfixturevalue("supabase")
    postgres = request.getfixturevalue("postgres")
    env = store_env("supabase", fake) | data_dir
    return Store("supabase", start_session_gateway(**env), env, f"{fake.url}/auth/v1", postgres.new_user)
