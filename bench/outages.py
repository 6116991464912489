"""What a store outage adds to a request, before and after the breakers and stale keys, side by side.

Each store is put behind a switchable TCP proxy on loopback and made to fail three
ways while requests are timed: `down` (every connection reset at once), `hanging`
(connections accepted, never answered) and `errors` (the store answers 503). The
same scenarios run against this checkout ("after") and against the code at
`--before` (default: the last commit without breakers), extracted with
`git archive` and served by the same Python. Latencies are sequential requests
through the local server; "added" is each scenario's p50/p99 minus the healthy p50
of the same version.

- Upstash (rate-limit counters): anonymous chat requests, `UPSTASH_REDIS_TIMEOUT`
  0.5 s, `RATE_LIMIT_FAILURE_MODE=open`.
- Supabase (key store): chat requests with a key, `CLOUDGPT_KEY_CACHE_SECONDS=0`
  so that every request asks the store (the worst case: a warm key within the
  cache time costs no store call on either version).

    .venv/bin/python bench/outages.py [--requests 50] [--before dcdf82c]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import percentile  # noqa: E402
from tests.conftest import Gateway, free_port  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.fakes.supabase import FakeSupabase, error_body  # noqa: E402
from tests.fakes.upstash import UpstashEmulator  # noqa: E402
from tests.key_stores import JWT_SECRET, access_token  # noqa: E402
from tests.postgres import running_postgres  # noqa: E402

BODY = {"model": "openai", "messages": [{"role": "user", "content": "Write a haiku about AI"}]}
BEFORE = "dcdf82c"  # key verification with key ids, no breakers, per-phase Upstash timeouts
SCENARIOS = ("healthy", "down", "hanging", "errors")


class SwitchableProxy:
    """A TCP proxy to `target` that can pass traffic, reset every connection, or swallow it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "up"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def switch(self, mode: str) -> None:
        """Pass ("up"), reset ("down") or swallow ("hanging"); open connections are cut either way."""
        self.mode = mode
        with self._lock:
            for sock in self._open:
                _reset(sock)
            self._open.clear()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on loopback
            if self.mode == "down":
                _reset(client)
                continue
            with self._lock:
                self._open.append(client)
            if self.mode == "up":
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    self._open.append(upstream)
                threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            else:  # hanging: the connection stays open, unread
                pass


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        _reset(sock)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def before_tree(ref: str, stack: ExitStack) -> Path:
    """The code at `ref`, extracted into a temporary directory."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def start(tree: Path | None, env: dict[str, str]) -> Gateway:
    """The local server of `tree` (None: this checkout)."""
    if tree is None:
        return Gateway(env)
    code = (
        f"import os, runpy, sys; os.chdir({str(tree)!r}); sys.path[0] = {str(tree)!r}; "
        "runpy.run_module('lib.devserver', run_name='__main__', alter_sys=True)"
    )
    return Gateway(env, ("-c", code, "--port", "{port}"))


def timed(gateway: Gateway, headers: dict[str, str], n: int) -> tuple[list[float], Counter[int]]:
    samples, statuses = [], Counter()
    for _ in range(n):
        started = time.perf_counter()
        response = gateway.client.post("/api/chat", json=BODY, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] += 1
    return samples, statuses


def run_store(
    tree: Path | None,
    env: dict[str, str],
    headers: dict[str, str],
    proxy: SwitchableProxy,
    failing: Callable[[], AbstractContextManager[None]],
    n: int,
) -> dict[str, tuple[list[float], Counter[int]]]:
    """Each scenario's latencies and statuses, each on a fresh gateway (a fresh process: breaker
    closed, nothing cached) that first served a few requests while the store was healthy."""
    results = {}
    for scenario in SCENARIOS:
        gateway = start(tree, env)
        try:
            timed(gateway, headers, 5)
            proxy.switch({"down": "down", "hanging": "hanging"}.get(scenario, "up"))
            with failing() if scenario == "errors" else nullcontext():
                results[scenario] = timed(gateway, headers, n)
        finally:
            proxy.switch("up")
            gateway.stop()
    return results


@contextmanager
def environment(stack: ExitStack) -> Iterator[dict]:
    upstream = stack.enter_context(FakePollinations())
    redis = RedisServer(Path(stack.enter_context(tempfile.TemporaryDirectory())), free_port())
    stack.callback(redis.stop)
    upstash = stack.enter_context(UpstashEmulator(redis, "bench-token"))
    postgres = stack.enter_context(running_postgres())
    supabase = stack.enter_context(FakeSupabase(postgres, JWT_SECRET))
    yield {"upstream": upstream, "upstash": upstash, "postgres": postgres, "supabase": supabase}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()
    results: dict[tuple[str, str], dict] = {}
    with ExitStack() as stack:
        fakes = stack.enter_context(environment(stack))
        upstash, supabase = fakes["upstash"], fakes["supabase"]
        upstash_proxy = SwitchableProxy(upstash.port)
        supabase_proxy = SwitchableProxy(supabase.port)
        outage = json.dumps(error_body("PGRST000", "Could not connect with the database")).encode()

        def upstash_errors() -> AbstractContextManager[None]:
            return upstash.answer_with(503, b'{"error":"ERR service unavailable"}')

        def supabase_errors() -> AbstractContextManager[None]:
            return supabase.answer_with(503, outage)

        trees = {"before": before_tree(args.before, stack), "after": None}
        base = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("UPSTASH_", "SUPABASE_", "RATE_LIMIT_"))
            },
            "POLLINATIONS_BASE_URL": fakes["upstream"].url,
            "RATE_LIMIT_CHAT_ANONYMOUS": "1000000",
            "RATE_LIMIT_CHAT_AUTHENTICATED": "1000000",
            "UPSTASH_REDIS_TIMEOUT": "0.5",
        }
        for version, tree in trees.items():
            counters_env = {
                **base,
                "CLOUDGPT_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
                "UPSTASH_REDIS_REST_URL": upstash_proxy.url,
                "UPSTASH_REDIS_REST_TOKEN": "bench-token",
            }
            results[("Upstash", version)] = run_store(
                tree, counters_env, {}, upstash_proxy, upstash_errors, args.requests
            )
            keys_env = {
                **base,
                "CLOUDGPT_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
                "SUPABASE_URL": supabase_proxy.url,
                "SUPABASE_SERVICE_ROLE_KEY": supabase.service_role_key,
                "SUPABASE_JWT_SECRET": JWT_SECRET,
                "CLOUDGPT_KEY_CACHE_SECONDS": "0",
            }
            token = access_token(fakes["postgres"].new_user(), f"{supabase_proxy.url}/auth/v1")
            issuer = start(tree, keys_env)
            created = issuer.client.post("/api/keys", headers={"Authorization": f"Bearer {token}"})
            issuer.stop()
            assert created.status_code == 201, created.text
            key = {"Authorization": f"Bearer {created.json()['key']}"}
            results[("Supabase", version)] = run_store(
                tree, keys_env, key, supabase_proxy, supabase_errors, args.requests
            )
    report(results, args)


def report(results: dict[tuple[str, str], dict], args: argparse.Namespace) -> None:
    print(f"added latency per request while a store fails ({args.requests} sequential requests each; ms)")
    print(f"before = {args.before}, after = this checkout\n")
    header = f"{'store':<9} {'scenario':<8} | {'before: added p50':>17} {'p99':>7}  statuses    | {'after: added p50':>16} {'p99':>7}  statuses"
    print(header)
    print("-" * len(header))
    for store in ("Upstash", "Supabase"):
        for scenario in SCENARIOS:
            cells = []
            for version in ("before", "after"):
                runs = results[(store, version)]
                healthy = statistics.median(runs["healthy"][0])
                samples, statuses = runs[scenario]
                p50 = percentile(samples, 0.5) - (0 if scenario == "healthy" else healthy)
                p99 = percentile(samples, 0.99) - (0 if scenario == "healthy" else healthy)
                codes = " ".join(f"{code}x{count}" for code, count in sorted(statuses.items()))
                cells.append(f"{p50:>17.1f} {p99:>7.1f}  {codes:<11}")
            print(f"{store:<9} {scenario:<8} | {cells[0]} | {cells[1]}")
    print("\n(healthy rows are absolute latencies; the others are added to the healthy p50)")


if __name__ == "__main__":
    main()
