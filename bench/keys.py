"""What API-key verification costs a request, on both key stores, measured on loopback.

For each store (embedded SQLite; Supabase = the test suite's emulated PostgREST in
front of a throwaway PostgreSQL, so no real network round trip is included):

- `verify()` in-process: a warm (cached) verification and a first-use one (store
  round trip, cache bypassed);
- through the local server: the same chat request anonymous, with a key whose
  verification is cached, and with the cache off (a store round trip every request).

And the cold import of api/chat.py, with the modules that must not be imported there.

    .venv/bin/python bench/keys.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import cold_import_ms, percentile, sample  # noqa: E402
from tests.conftest import Gateway  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402
from tests.fakes.supabase import FakeSupabase  # noqa: E402
from tests.key_stores import JWT_SECRET  # noqa: E402
from tests.postgres import running_postgres  # noqa: E402

BODY = {"model": "openai", "messages": [{"role": "user", "content": "Write a haiku about AI"}]}


def stats(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 0.5):7.3f}  p99 {percentile(samples, 0.99):7.3f}"


def in_process(env: dict[str, str], user: str, n: int) -> None:
    """verify() called directly: cached, and with the cache bypassed."""
    code = f"""
import os, sys, time, json
sys.path.insert(0, ".")
os.environ.update({env!r})
from lib import keys
key = keys.create({user!r}, "bench")["key"]
def timed(n, clear):
    out = []
    for _ in range(n):
        if clear:
            keys._verified.clear()
        t = time.perf_counter(); keys.verify(key); out.append((time.perf_counter() - t) * 1000)
    return out
timed(50, True)
print(json.dumps({{"warm": timed({n}, False), "first use": timed({n}, True)}}))
"""
    result = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    for name, samples in result.items():
        print(f"  verify(), {name:<20} {stats(samples)} ms")


def through_http(env: dict[str, str], upstream: str, user: str, n: int, stack: ExitStack) -> None:
    base = {**os.environ, "POLLINATIONS_BASE_URL": upstream, "RATE_LIMIT_CHAT_ANONYMOUS": "1000000",
            "RATE_LIMIT_CHAT_AUTHENTICATED": "1000000", **env}  # fmt: skip
    cached = Gateway(base)
    uncached = Gateway({**base, "CLOUDGPT_KEY_CACHE_SECONDS": "0"})
    for gateway in (cached, uncached):
        stack.callback(gateway.stop)
    token = jwt_for(user, env.get("SUPABASE_URL"))
    key = cached.client.post(
        "/api/keys", json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert key.status_code == 201, key.text
    key = key.json()["key"]

    def call(gateway: Gateway, auth: dict[str, str]):
        def one() -> None:
            response = gateway.client.post("/api/chat", json=BODY, headers=auth)
            assert response.status_code == 200, response.text

        return one

    anonymous = sample(call(cached, {}), n)
    with_key = {"Authorization": f"Bearer {key}"}
    warm = sample(call(cached, with_key), n)
    cold = sample(call(uncached, with_key), n)
    base50 = statistics.median(anonymous)
    print(f"  HTTP chat, anonymous           {stats(anonymous)} ms")
    print(
        f"  HTTP chat, key (cached)        {stats(warm)} ms   added p50 {statistics.median(warm) - base50:+.3f}"
    )
    print(
        f"  HTTP chat, key (store lookup)  {stats(cold)} ms   added p50 {statistics.median(cold) - base50:+.3f}"
    )


def jwt_for(user: str, supabase_url: str | None) -> str:
    claims = {"sub": user, "aud": "authenticated", "exp": int(time.time()) + 3600}
    if supabase_url:
        claims["iss"] = f"{supabase_url}/auth/v1"
    return jwt.encode(claims, JWT_SECRET)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with ExitStack() as stack:
        upstream = stack.enter_context(FakePollinations())
        postgres = stack.enter_context(running_postgres())
        supabase = stack.enter_context(FakeSupabase(postgres, JWT_SECRET))
        data_dir = stack.enter_context(tempfile.TemporaryDirectory())
        stores = {
            "embedded (SQLite)": ({"CLOUDGPT_DATA_DIR": data_dir}, str(uuid.uuid4())),
            "supabase (emulated PostgREST + PostgreSQL)": (
                {"SUPABASE_URL": supabase.url, "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key},
                postgres.new_user(),
            ),
        }
        for name, (env, user) in stores.items():
            env = {**env, "SUPABASE_JWT_SECRET": JWT_SECRET}
            print(name)
            in_process(env, user, args.requests)
            through_http(env, upstream.url, user, args.requests, stack)

    cold = cold_import_ms(15, cached_bytecode=True)
    print(f"cold import of api/chat.py (bytecode cached): median {statistics.median(cold):.1f} ms over 15")
    probe = (
        "import sys; sys.path.insert(0, '.'); import importlib.util as u;"
        "s = u.spec_from_file_location('chat', 'api/chat.py'); s.loader.exec_module(u.module_from_spec(s));"
        "print(sorted(m for m in ('supabase', 'postgrest', 'jwt', 'cryptography', 'sqlite3') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    print(f"heavy modules loaded by importing api/chat.py: {loaded.stdout.strip()}")


if __name__ == "__main__":
    main()
