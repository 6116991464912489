"""What the accounts routes cost, on loopback through the local server (embedded default).

- `GET /api/config`: what every page load asks first (no store, no key);
- `POST /api/session`: redeeming a local sign-in code (one SQLite delete, one JWT);
- `GET /api/keys` with the local operator's token: its verification included (signature,
  the secret file's `stat`, the session's SQLite row);
- `POST /api/chat` with that token (the playground signed in) beside the same call with a key;
- the local token's verification in-process, the part the session check adds to;
- the cold import of api/config.py and api/session.py, and the heavy modules each loads.

    .venv/bin/python bench/accounts.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import account_env, cold_import_ms, percentile, sample, start_upstream  # noqa: E402
from tests.conftest import Gateway  # noqa: E402

HEAVY = ("pydantic", "jwt", "cryptography", "sqlite3", "supabase", "httpx")


def stats(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 0.5):7.3f}  p99 {percentile(samples, 0.99):7.3f} ms"


def codes(data_dir: str, n: int) -> list[str]:
    """`n` fresh sign-in codes, issued as `make signin` issues them."""
    code = (
        "import sys; sys.path.insert(0, '.'); from lib import local_signin;"
        f"print('\\n'.join(local_signin.new_code() for _ in range({n})))"
    )
    env = {**os.environ, "CLOUDGPT_DATA_DIR": data_dir}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    upstream, stop_upstream = start_upstream()
    with tempfile.TemporaryDirectory() as data_dir:
        env = account_env(upstream, data_dir)
        gateway = Gateway(env)
        try:
            config = sample(lambda: gateway.client.get("/api/config").raise_for_status(), args.requests)
            print(f"GET /api/config                     {stats(config)}")
            pending = codes(data_dir, args.requests + min(args.requests, 200))  # sample() warms up first
            token = ""

            def redeem() -> None:
                nonlocal token
                response = gateway.client.post("/api/session", json={"code": pending.pop()})
                token = response.raise_for_status().json()["accessToken"]

            session = sample(redeem, args.requests)
            print(f"POST /api/session (a fresh code)    {stats(session)}")
            auth = {"Authorization": f"Bearer {token}"}
            listing = sample(
                lambda: gateway.client.get("/api/keys", headers=auth).raise_for_status(), args.requests
            )
            print(f"GET /api/keys (local token)         {stats(listing)}")
            key = gateway.client.post("/api/keys", json={}, headers=auth).raise_for_status().json()["key"]
            chat = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
            for name, credential in (("an API key", key), ("the local token", token)):
                calls = sample(
                    lambda c=credential: gateway.client.post(
                        "/api/chat", json=chat, headers={"Authorization": f"Bearer {c}"}
                    ).raise_for_status(),
                    args.requests,
                )
                print(f"POST /api/chat ({name + ')':16}   {stats(calls)}")
            verify = (
                "import sys, time; sys.path.insert(0, '.'); from lib import accounts;"
                f"t = {token!r}; accounts.verify_token(t); n = 5000; s = time.perf_counter()\n"
                "for _ in range(n): accounts.verify_token(t)\n"
                "print(f'{(time.perf_counter() - s) / n * 1e6:.1f}')"
            )
            done = subprocess.run(
                [sys.executable, "-c", verify],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"verify_token (local token), in-process: {done.stdout.strip()} us per call")
        finally:
            gateway.stop()
            stop_upstream()

    for function in ("api/config.py", "api/session.py"):
        cold = cold_import_ms(15, cached_bytecode=True, function=function)
        probe = (
            "import sys; sys.path.insert(0, '.'); import importlib.util as u;"
            f"s = u.spec_from_file_location('f', {function!r}); s.loader.exec_module(u.module_from_spec(s));"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
        )
        loaded = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        )
        print(
            f"cold import of {function} (bytecode cached): median {statistics.median(cold):.1f} ms over 15;"
            f" loads {loaded.stdout.strip()}"
        )


if __name__ == "__main__":
    main()
