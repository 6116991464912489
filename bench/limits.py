"""What the rate-limit check costs, on each backend, measured on loopback.

- `enforce()` alone, in-process, as a request calls it: SQLite, and Upstash through
  `lib/upstash.py` against the REST emulator (its own process, in front of a real
  redis-server), with the HTTP round trips to it counted per check;
- a refused (429) chat request through the local server on each backend: it is
  identified, counted and answered without a provider call, so the check is
  nearly all it costs, and the difference is what Upstash adds end to end;
- the one-off import of the Upstash backend (beyond `api/chat` and what it imports),
  paid by the first request of an instance on Upstash;
- `enforce()` for a key without controls and with each control, and the Upstash
  commands a chat request with such a key costs through the local server, usage
  write included (Upstash bills per command): requests sent one after another,
  then the emulator's bodies counted once the usage writes have landed.

Loopback hides the network: against a real Upstash add the round-trip time to its
region. The machine is small and shared, so repeat runs and compare medians.

    make bench            # or: .venv/bin/python bench/limits.py --requests 3000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import BODY, p50_p99, sample  # noqa: E402
from lib.caller import Caller  # noqa: E402
from lib.limits import enforce  # noqa: E402
from lib.settings import settings  # noqa: E402
from tests.conftest import Gateway, free_port  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.fakes.upstash import UpstashEmulator  # noqa: E402

TOKEN = "bench-token"


def serve_upstash(commands: Connection) -> None:
    """Redis and the emulator in their own process; answers "requests" with its request count."""
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory), free_port())
        emulator = UpstashEmulator(redis, TOKEN).start()
        commands.send(emulator.url)
        while (command := commands.recv()) != "stop":
            if command == "requests":
                commands.send(emulator.requests)
            else:  # "commands": every command sent so far (a transaction's each, a single one)
                commands.send(sum(_commands(body) for body in emulator.bodies))
        emulator.stop()
        redis.stop()


def _commands(body: bytes) -> int:
    parsed = json.loads(body or b"[]")
    return len(parsed) if parsed and isinstance(parsed[0], list) else 1


def start_upstash() -> tuple[str, Callable[..., int], Callable[[], None]]:
    """The emulator's URL, a function counting the requests (or with "commands", the commands) it
    received so far, and its stop."""
    upstash_end, child_end = multiprocessing.Pipe()
    upstash = multiprocessing.Process(target=serve_upstash, args=(child_end,), daemon=True)
    upstash.start()

    def requests(what: str = "requests") -> int:
        upstash_end.send(what)
        return upstash_end.recv()

    def stop() -> None:
        upstash_end.send("stop")
        upstash.join(10)

    return upstash_end.recv(), requests, stop


def configure(env: dict[str, str]) -> None:
    """Point this process's settings at a backend (settings are read once, so re-read them)."""
    for name in ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(env)
    settings.cache_clear()


def refused(client: httpx.Client) -> Callable[[], object]:
    """A chat request past a limit of 1 (each minute's first is admitted, and finds no provider)."""

    def call() -> object:
        response = client.post("/api/chat", json=BODY)
        assert response.status_code in (429, 502), response.text
        return response

    return call


def row(name: str, samples: list[float], extra: str = "") -> None:
    p50, p99 = p50_p99(samples)
    print(f"{name:<44} {p50:8.3f} {p99:8.3f}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per measured run")
    args = parser.parse_args()
    n = args.requests

    upstash_url, upstash_requests, stop_upstash = start_upstash()
    backends = {
        "sqlite": {},
        "upstash": {"UPSTASH_REDIS_REST_URL": upstash_url, "UPSTASH_REDIS_REST_TOKEN": TOKEN},
    }
    with tempfile.TemporaryDirectory() as data_dir:
        base = {
            "CLOUDGPT_DATA_DIR": data_dir,
            "RATE_LIMIT_CHAT_ANONYMOUS": "1000000000",
        }
        print(f"rate-limit check, ms, loopback, {os.cpu_count()} cores, {n} requests a run")
        print(f"{'':<44} {'p50':>8} {'p99':>8}")
        caller = Caller("anonymous", "192.0.2.1")
        for name, env in backends.items():
            configure({**base, **env})
            before = upstash_requests()
            samples = sample(lambda: enforce(caller, "chat"), n)
            calls = min(n, 200) + n  # sample() warms up first
            trips = (upstash_requests() - before) / calls
            row(f"enforce() in-process, {name}", samples, f"{trips:.2f} Upstash round trips per check")
        print()
        keyed(base, backends["upstash"], n, lambda: upstash_requests("commands"))
        print()
        through = {}
        for name, env in backends.items():
            gateway = Gateway({**os.environ, **base, **env, "RATE_LIMIT_CHAT_ANONYMOUS": "1"})
            try:
                with httpx.Client(base_url=gateway.url) as client:
                    through[name] = sample(refused(client), n)
            finally:
                gateway.stop()
            row(f"refused chat request via local server, {name}", through[name])
        (s50, s99), (u50, u99) = p50_p99(through["sqlite"]), p50_p99(through["upstash"])
        print(f"{'Upstash over SQLite, end to end':<44} {u50 - s50:+8.3f} {u99 - s99:+8.3f}")

    stop_upstash()

    # What the function imports already is not the backend's cost: only what it adds.
    code = (
        "import time, api.chat; t = time.perf_counter(); import lib.counters.upstash, lib.usage.upstash;"
        "print((time.perf_counter() - t) * 1000)"
    )
    imports = [
        float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout)
        for _ in range(10)
    ]
    print(
        f"import of the Upstash backend (first request of an instance on Upstash): "
        f"median {statistics.median(imports):.1f} ms, max {max(imports):.1f} ms over 10 fresh interpreters"
    )


CONTROLS = {
    "no controls": {},
    "expires, disabled, models": {"expires": int(time.time()) + 365 * 86_400, "models": ["openai"]},
    "own chat limit": {"limits": {"chat": 1_000_000}},
    "request quota": {"quota": {"period": "month", "requests": 10**9, "tokens": None}},
    "token quota": {"quota": {"period": "month", "requests": None, "tokens": 10**12}},
    "every control": {
        "expires": int(time.time()) + 365 * 86_400, "models": ["openai"], "limits": {"chat": 1_000_000},
        "quota": {"period": "month", "requests": 10**9, "tokens": 10**12},
    },
}  # fmt: skip


def keyed(base: dict[str, str], upstash_env: dict[str, str], n: int, commands: Callable[[], int]) -> None:
    """enforce() for a key with each set of controls, then Upstash commands per chat request."""
    from bench.gateway import gateway_env, start_upstream
    from lib import keys

    print(f"{'enforce() in-process, a key with ...':<44} {'p50':>8} {'p99':>8}")
    for env_name, env in (("sqlite", {}), ("upstash", upstash_env)):
        configure({**base, **env, "RATE_LIMIT_CHAT_AUTHENTICATED": "1000000"})
        for name, controls in CONTROLS.items():
            created = keys.create(
                "0b9f0f4e-7d7e-4c55-9a0e-3d1b3d3f3a11", "bench", keys.checked_controls(controls)
            )
            caller = Caller("user", "0b9f0f4e-7d7e-4c55-9a0e-3d1b3d3f3a11", keys.verify(created["key"]))
            row(f"  {name}, {env_name}", sample(lambda: enforce(caller, "chat"), n))  # noqa: B023
    print()
    print("Upstash commands per chat request through the local server (usage write included)")
    upstream_url, stop_upstream = start_upstream()
    env = gateway_env(
        upstream_url, base["CLOUDGPT_DATA_DIR"], **upstash_env, RATE_LIMIT_CHAT_AUTHENTICATED="1000000"
    )
    gateway = Gateway(env, ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"))  # one cache to warm
    try:
        configure({**base, **upstash_env})
        for name, controls in CONTROLS.items():
            key = keys.create("0b9f0f4e-7d7e-4c55-9a0e-3d1b3d3f3a11", name, keys.checked_controls(controls))
            headers = {"Authorization": f"Bearer {key['key']}"}
            gateway.client.post("/api/chat", json=BODY, headers=headers)  # the key verified: warm
            time.sleep(0.5)
            before = commands()
            for _ in range(50):
                assert gateway.client.post("/api/chat", json=BODY, headers=headers).status_code == 200
                time.sleep(0.05)  # each usage write alone, as on Vercel (locally they gather for 20 ms)
            time.sleep(1.0)  # the last usage writes land
            print(f"  {name:<42} {(commands() - before) / 50:5.1f} commands per request")
    finally:
        gateway.stop()
        stop_upstream()


if __name__ == "__main__":
    main()
