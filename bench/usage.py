"""What recording usage and activity costs the caller: time to the last byte, with and without recording.

Requests are made with an API key, so each leaves a usage record and an activity
entry, written together. The local server runs the chat function three ways, each on
SQLite and on Upstash (the REST emulator in front of a real redis-server, its own
process, every answer delayed by `--upstash-rtt` ms to stand for the network to a
real Upstash):

- `off`:      nothing recorded (the meter's report does nothing);
- `recorded`: as shipped: the server closes the body after its last chunk, and the
              record goes to the process's writer thread, which writes what waits;
- `inline`:   the same write done on the request's own thread inside close(), which
              is what the caller would wait for if it were not moved off.

Each is measured for a JSON answer (it has a Content-Length) and a stream (it has
not: its end is the chunked terminator the server writes after close() returns).
Time to last byte is from sending the request to reading the end of the body. On
Upstash every column includes the rate-limit check's round trip before the first
byte; `inline` minus `off` is what the record's round trip would add. On Upstash
the last column counts, for `recorded`, the requests the emulator served and the
commands they carried, per chat request (Upstash bills per command; a script counts
as one, whatever it calls inside).

    make bench            # or: .venv/bin/python bench/usage.py --requests 300 --upstash-rtt 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import BODY, gateway_env, p50_p99, sample, start_upstream  # noqa: E402
from tests.conftest import Gateway, free_port  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.fakes.upstash import UpstashEmulator  # noqa: E402

TOKEN = "bench-token"

# The local server, with the meter's report switched by BENCH_USAGE_MODE.
SERVER = """
import os, runpy, sys
import lib.usage as usage

mode = os.environ["BENCH_USAGE_MODE"]
if mode == "off":
    usage.Meter.sent = lambda self, response, failed: None
elif mode == "inline":
    class Inline:
        def put(self, entry):
            usage._record([entry])
    usage._writer = Inline
sys.argv = ["lib.devserver", *sys.argv[1:]]
runpy.run_module("lib.devserver", run_name="__main__")
"""


def serve_upstash(commands: Connection, delay: float) -> None:
    """The emulator; asked "count", it answers the requests and commands it served so far."""
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory), free_port())
        emulator = UpstashEmulator(redis, TOKEN).start()
        emulator.delay = delay
        commands.send(emulator.url)
        while commands.recv() == "count":
            batches = [json.loads(body) for body in list(emulator.bodies)]
            sent = sum(len(b) if b and isinstance(b[0], list) else 1 for b in batches)
            commands.send((len(batches), sent))
        emulator.stop()
        redis.stop()


def new_key(env: dict[str, str]) -> dict[str, str]:
    """A key of a new user, made on the gateway's key store (SQLite under its data directory)."""
    code = f"from lib import keys; print(keys.create({str(uuid.uuid4())!r}, 'bench')['key'])"
    made = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {made.stdout.strip()}"}


def chat(client: httpx.Client, stream: bool, key: dict[str, str]) -> Callable[[], object]:
    def call() -> object:
        response = client.post("/api/chat", json={**BODY, "stream": stream}, headers=key)  # to the body's end
        assert response.status_code == 200, response.text
        return response

    return call


def upstash_count(upstash: Connection) -> tuple[int, int]:
    upstash.send("count")
    return upstash.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per measured run")
    parser.add_argument("--upstash-rtt", type=float, default=20.0, help="ms added to each Upstash answer")
    args = parser.parse_args()

    upstream_url, stop_upstream = start_upstream()
    upstash_end, child_end = multiprocessing.Pipe()
    upstash = multiprocessing.Process(
        target=serve_upstash, args=(child_end, args.upstash_rtt / 1000), daemon=True
    )
    upstash.start()
    upstash_url = upstash_end.recv()
    backends = {
        "sqlite": {},
        f"upstash +{args.upstash_rtt:g} ms": {
            "UPSTASH_REDIS_REST_URL": upstash_url,
            "UPSTASH_REDIS_REST_TOKEN": TOKEN,
            "UPSTASH_REDIS_TIMEOUT": "5",
        },
    }
    print(
        f"chat, time to last byte in ms, local server, loopback, {os.cpu_count()} cores, {args.requests} a run"
    )
    print(f"{'':<34} {'off':>17} {'recorded':>17} {'inline':>17}   Upstash per request")
    print(f"{'':<34}" + f" {'p50':>8} {'p99':>8}" * 3 + "   requests commands")
    try:
        for backend, backend_env in backends.items():
            for stream in (False, True):
                cells, per_request = [], ""
                for mode in ("off", "recorded", "inline"):
                    with tempfile.TemporaryDirectory() as data_dir:
                        env = gateway_env(
                            upstream_url, data_dir, **backend_env, BENCH_USAGE_MODE=mode,
                            RATE_LIMIT_CHAT_AUTHENTICATED="1000000000",
                        )  # fmt: skip
                        gateway = Gateway(env, ("-c", SERVER, "--port", "{port}"))
                        try:
                            with httpx.Client(base_url=gateway.url) as client:
                                call = chat(client, stream, new_key(env))
                                before = upstash_count(upstash_end) if backend_env else (0, 0)
                                cells.append(p50_p99(sample(call, args.requests)))
                                time.sleep(0.5)  # the last records land
                                if backend_env and mode == "recorded":
                                    after = upstash_count(upstash_end)
                                    calls = args.requests + min(args.requests, 200)  # with the warm-up
                                    served = [(a - b) / calls for a, b in zip(after, before, strict=True)]
                                    per_request = f"   {served[0]:8.2f} {served[1]:8.2f}"
                        finally:
                            gateway.stop()
                name = f"{'stream' if stream else 'JSON'}, {backend}"
                print(f"{name:<34}" + "".join(f" {p50:8.2f} {p99:8.2f}" for p50, p99 in cells) + per_request)
    finally:
        upstash_end.send("stop")
        upstash.join(10)
        stop_upstream()


if __name__ == "__main__":
    main()
