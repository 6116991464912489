"""CloudGPT's local server beside the gateways users would pick instead, all in front of one fake provider.

The same zero-delay fake OpenAI-style provider (tests/fakes/pollinations.py, in its
own process) is called directly and through each gateway's /v1/chat/completions:
CloudGPT's local server, LiteLLM's proxy (PyPI `litellm[proxy]`) and Portkey's
gateway (npm `@portkey-ai/gateway`). The peers are installed, pinned, on first use
under .cache/ (gitignored); each Python server gets one worker process per core.
For each:

- the p50/p99 it adds over calling the fake directly: sequential requests from one
  keep-alive client, in interleaved rounds, so a slow moment of the machine falls
  on every server alike;
- the time to the first streamed event (`"stream": true`), p50;
- requests per second from 16 connections (wrk, one server at a time).

    make bench      # or: .venv/bin/python bench/peers.py --rounds 4 --requests 300 --seconds 8
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from gateway import BODY, ROOT, first_event, gateway_env, p50_p99, post, sample, start_upstream, wrk

from tests.conftest import Gateway, free_port

LITELLM = "litellm[proxy]==1.108.7"
PORTKEY = "@portkey-ai/gateway@1.15.2"
CACHE = ROOT / ".cache"
PATH = "/v1/chat/completions"


@dataclass
class Target:
    """A server in front of the fake, and what was measured through it."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_events: list[float] = field(default_factory=list)
    stream_status: int = 200


def install_litellm() -> Path:
    venv = CACHE / "litellm"
    stamp = venv / f".installed-{LITELLM}"
    if not stamp.exists():
        print(f"installing {LITELLM} into {venv.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, LITELLM], check=True)
        stamp.touch()
    return venv / "bin" / "litellm"


def install_portkey() -> Path:
    folder = CACHE / "portkey"
    stamp = folder / f".installed-{PORTKEY.replace('/', '+')}"
    if not stamp.exists():
        print(f"installing {PORTKEY} into {folder.relative_to(ROOT)} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", str(folder), PORTKEY], check=True)
        stamp.touch()
    return folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


@contextmanager
def server(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server process listening on 127.0.0.1:`port`, stopped on exit; its output goes to a file."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(
                            f"{argv[0]} did not start: {log.read().decode()[-3000:]}"
                        ) from None
                    time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def litellm(upstream: str, workers: int) -> Iterator[Target]:
    """LiteLLM's proxy with the fake as an OpenAI-compatible deployment named like CloudGPT's model."""
    executable = install_litellm()
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write(
            "model_list:\n"
            "  - model_name: openai\n"
            "    litellm_params:\n"
            "      model: openai/openai\n"
            f"      api_base: {upstream}/v1\n"
            "      api_key: bench\n"
        )
        config.flush()
        # The model price map is read from the package, not fetched; callers need the master key.
        master_key = "sk-" + secrets.token_hex(32)
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": master_key,
        }
        argv = [str(executable), "--config", config.name, "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--num_workers", str(workers), "--telemetry", "False"]
        with server(argv, port, env):
            headers = {"Authorization": f"Bearer {master_key}"}
            yield Target(f"LiteLLM proxy ({workers} workers)", f"http://127.0.0.1:{port}", headers)


@contextmanager
def portkey(upstream: str) -> Iterator[Target]:
    """Portkey's gateway (Node, one process), told per request to use the fake as an OpenAI host."""
    entry = install_portkey()
    port = free_port()
    # Its server listens on every interface; the preload binds it to loopback.
    argv = [
        "node",
        "--import",
        str(ROOT / "bench" / "loopback.mjs"),
        str(entry),
        f"--port={port}",
        "--headless",
    ]
    headers = {
        "Authorization": "Bearer bench",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{upstream}/v1",
    }
    with server(argv, port, {**os.environ, "NODE_ENV": "production"}):
        yield Target("Portkey gateway (Node)", f"http://127.0.0.1:{port}", headers)


def timed(client: httpx.Client, n: int) -> list[float]:
    return sample(post(client, PATH), n, warm_up=0)  # the rounds interleave: each is warm already


def measure(targets: list[Target], rounds: int, n: int) -> None:
    """Sequential latencies and first streamed events, the servers taking turns round by round."""
    clients = {t.name: httpx.Client(base_url=t.url, headers=t.headers, timeout=30) for t in targets}
    try:
        for target in targets:
            timed(clients[target.name], min(n, 100))  # warm: imports, pools, JIT
            with clients[target.name].stream("POST", PATH, json={**BODY, "stream": True}) as response:
                response.read()
                target.stream_status = response.status_code
        for _ in range(rounds):
            for target in targets:
                client = clients[target.name]
                target.latencies += timed(client, n)
                if target.stream_status == 200:
                    target.first_events += [first_event(client, PATH)() for _ in range(max(10, n // 5))]
    finally:
        for client in clients.values():
            client.close()


def report(targets: list[Target], rps: dict[str, float], connections: int) -> None:
    direct = targets[0]
    d50, d99 = p50_p99(direct.latencies)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nchat completions on loopback, {os.cpu_count()} cores, load average {load}; ms")
    print(
        f"{'':<34} {'p50':>7} {'p99':>7} {'added p50':>10} {'added p99':>10} {'1st event':>10} {'req/s':>8}"
    )
    print(f"{'':<34} {'':>7} {'':>7} {'':>10} {'':>10} {'p50':>10} {f'({connections} c)':>8}")
    added = {}
    for target in targets:
        p50, p99 = p50_p99(target.latencies)
        first = (
            f"{p50_p99(target.first_events)[0]:10.2f}"
            if target.first_events
            else f"{target.stream_status:>10}"
        )
        added[target.name] = (p50 - d50, p99 - d99)
        extra = "" if target is direct else f"{p50 - d50:+10.2f} {p99 - d99:+10.2f}"
        rate = rps.get(target.name, float("nan"))
        print(f"{target.name:<34} {p50:7.2f} {p99:7.2f} {extra:>21} {first} {rate:8.0f}")
    for target in targets:
        if not target.first_events:
            print(f"{target.name}: every streamed request answered {target.stream_status} (see its log)")
    ours, peers = targets[1], targets[2:]
    best_peer_p99 = min(added[p.name][1] for p in peers)
    print(
        f"\ntargets: added p50 {added[ours.name][0]:.2f} <= 0.5 ms: {added[ours.name][0] <= 0.5}; "
        f"added p99 {added[ours.name][1]:.2f} <= a third of the best peer's ({best_peer_p99 / 3:.2f}): "
        f"{added[ours.name][1] <= best_peer_p99 / 3}; "
        f"req/s above every peer's: {all(rps[ours.name] > rps[p.name] for p in peers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per server per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    args = parser.parse_args()
    workers = os.cpu_count() or 1

    upstream_url, stop_upstream = start_upstream()
    try:
        with tempfile.TemporaryDirectory() as data_dir, ExitStack() as stack:
            gateway = Gateway(gateway_env(upstream_url, data_dir))
            stack.callback(gateway.stop)
            targets = [
                Target("fake provider, direct", upstream_url),
                Target(f"CloudGPT local server ({workers} workers)", gateway.url),
                stack.enter_context(litellm(upstream_url, workers)),
                stack.enter_context(portkey(upstream_url)),
            ]
            measure(targets, args.rounds, args.requests)
            rps = {}
            if shutil.which("wrk"):
                for target in targets:
                    rps[target.name] = wrk(target.url + PATH, args.connections, args.seconds, target.headers)[
                        2
                    ]
            else:
                print("wrk is not installed: concurrent runs skipped (apt-get install wrk)")
            report(targets, rps, args.connections)
    finally:
        stop_upstream()


if __name__ == "__main__":
    main()
