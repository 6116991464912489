"""What checking Supabase sign-outs costs, on loopback through the local server (SQLite counters).

Supabase access tokens minted with the project's JWT secret, as Supabase Auth signs them:
- `POST /api/chat` with a token naming a live session (its sign-out marker read in the
  rate limit's round trip) beside a token naming none (nothing more read): the check's cost;
- `GET /api/keys` with the live token;
- `DELETE /api/session` (one marker written);
- the same chat with a signed-out token: refused from the process's memory.

    .venv/bin/python bench/signout.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import account_env, percentile, sample, start_upstream  # noqa: E402
from tests.conftest import Gateway  # noqa: E402

SECRET = "bench-jwt-secret-of-at-least-thirty-two-bytes"
CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


def stats(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 0.5):7.3f}  p99 {percentile(samples, 0.99):7.3f} ms"


def token(session: str | None) -> str:
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 3600}
    return jwt.encode(claims | ({"session_id": session} if session else {}), SECRET, algorithm="HS256")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    upstream, stop_upstream = start_upstream()
    with tempfile.TemporaryDirectory() as data_dir:
        env = account_env(upstream, data_dir) | {"SUPABASE_JWT_SECRET": SECRET}
        gateway = Gateway(env, ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"))
        try:
            live, sessionless = token(str(uuid.uuid4())), token(None)

            def call(path: str, credential: str, status: int = 200, method: str = "POST") -> object:
                headers = {"Authorization": f"Bearer {credential}"}
                body = CHAT if method == "POST" else None
                response = gateway.client.request(method, path, json=body, headers=headers)
                assert response.status_code == status, response.text
                return response

            for name, credential in (("token, no session", sessionless), ("token, live session", live)):
                print(
                    f"POST /api/chat ({name + ')':21} {stats(sample(lambda c=credential: call('/api/chat', c), args.requests))}"
                )
            keys = sample(lambda: call("/api/keys", live, method="GET"), args.requests)
            print(f"GET /api/keys (live session)         {stats(keys)}")
            ends = [token(str(uuid.uuid4())) for _ in range(args.requests + 200)]
            ended = sample(lambda: call("/api/session", ends.pop(), 204, "DELETE"), args.requests)
            print(f"DELETE /api/session                  {stats(ended)}")
            call("/api/session", live, 204, "DELETE")
            refused = sample(lambda: call("/api/chat", live, 401), args.requests)
            print(f"POST /api/chat (signed out, 401)     {stats(refused)}")
        finally:
            gateway.stop()
            stop_upstream()


if __name__ == "__main__":
    main()
