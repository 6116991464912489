"""What GET /api/health costs the stores and the caller, through the local server on Upstash.

The route needs no key, so anyone may call it as often as they like: each call
used to count in Upstash (an `INCR`) and ask Supabase (a verification RPC). Now
each store is read at most once every 5 s per instance, and one address gets 30
answers a minute. Measured here: the Upstash requests per 1,000 health calls
(spread over many loopback addresses, so the per-address limit does not refuse
them) and the latency of a call, one worker so that there is one instance.

    .venv/bin/python bench/health.py --requests 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import p50_p99, sample  # noqa: E402
from bench.limits import TOKEN, start_upstash  # noqa: E402
from tests.conftest import Gateway  # noqa: E402

ADDRESSES = 250  # 127.0.0.2 ... : each under the route's 30 calls a minute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="health calls measured")
    args = parser.parse_args()

    upstash_url, upstash_requests, stop_upstash = start_upstash()

    clients = [
        httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{n + 2}"))
        for n in range(ADDRESSES)
    ]
    calls = iter(range(10**9))
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "CLOUDGPT_DATA_DIR": data_dir,
            "UPSTASH_REDIS_REST_URL": upstash_url,
            "UPSTASH_REDIS_REST_TOKEN": TOKEN,
        }
        gateway = Gateway(env, ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"))
        try:

            def health() -> None:
                client = clients[next(calls) % ADDRESSES]
                assert client.get(f"{gateway.url}/api/health").status_code == 200

            before = upstash_requests()
            samples = sample(health, args.requests, warm_up=100)
            made = upstash_requests() - before
        finally:
            gateway.stop()
            for client in clients:
                client.close()
    stop_upstash()

    p50, p99 = p50_p99(samples)
    total = args.requests + 100
    print(f"GET /api/health via the local server (1 worker, Upstash emulator), {total} calls")
    print(f"  latency ms: p50 {p50:.3f}, p99 {p99:.3f}")
    print(f"  Upstash requests: {made} ({1000 * made / total:.1f} per 1,000 calls; one INCR per call before)")


if __name__ == "__main__":
    main()
