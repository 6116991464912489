"""How much latency CloudGPT adds, measured on loopback.

Starts a zero-delay fake Pollinations (in its own process) and the local server,
then compares the same chat request sent to the fake directly and through the
gateway:

- sequentially, from one Python client (httpx, keep-alive);
- the function alone: its WSGI `app` called in-process, as Vercel's runtime calls it;
- from 16 concurrent connections, with wrk (a C load generator, so the client is
  not what saturates), and the CPU the server's processes spent per request there
  (steadier than latency on a busy machine);
- the time to the first streamed event;
- the cold import of `api/chat.py` in fresh interpreters.

    make bench            # or: .venv/bin/python bench/gateway.py --requests 3000 --seconds 10
    .venv/bin/python bench/gateway.py --no-body-timeout   # the server's bodies read on its threads
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Gateway  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402

BODY = {"model": "openai", "messages": [{"role": "user", "content": "Write a haiku about AI"}]}
RAW_BODY = json.dumps(BODY).encode()
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = {json.dumps(json.dumps(BODY))}
wrk.headers["Content-Type"] = "application/json"
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sample(call: Callable[[], object], n: int, warm_up: int = 200) -> list[float]:
    """Latencies in ms of `n` calls, after up to `warm_up` calls not counted."""
    for _ in range(min(n, warm_up)):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def post(client: httpx.Client, path: str) -> Callable[[], object]:
    def call() -> object:
        response = client.post(path, content=RAW_BODY, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        return response

    return call


def load_function(relative: str) -> Any:
    """A function of api/ as Vercel's runtime loads it: the module whose `app` it calls."""
    spec = importlib.util.spec_from_file_location("function_" + Path(relative).stem, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wsgi_post(path: str, raw: bytes) -> dict[str, Any]:
    """A real WSGI environ for a JSON POST to `path`."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(raw),
    }


def function_call() -> Callable[[], object]:
    """The chat function's WSGI app, called in-process with a real request environ."""
    module = load_function("api/chat.py")

    def call() -> object:
        statuses = []
        body = b"".join(
            module.app(wsgi_post("/api/chat", RAW_BODY), lambda status, headers: statuses.append(status))
        )
        assert statuses == ["200 OK"], body
        return body

    return call


def first_event(client: httpx.Client, path: str) -> Callable[[], float]:
    def call() -> float:
        started = time.perf_counter()
        first = None
        with client.stream("POST", path, json={**BODY, "stream": True}) as response:
            for line in response.iter_lines():
                if first is None and line.startswith("data: "):
                    first = (time.perf_counter() - started) * 1000
        assert first is not None
        return first

    return call


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, connections: int, seconds: int, headers: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) from wrk with `connections` open connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.writelines(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
        )
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures:\n{out}")

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * _UNITS[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return latency("50%"), latency("99%"), rps


def tree_cpu_seconds(pid: int) -> float | None:
    """User and system CPU spent so far by `pid` and its child processes (Linux), else None."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for process in [pid, *map(int, children)]:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def cold_import_ms(rounds: int, cached_bytecode: bool, function: str = "api/chat.py") -> list[float]:
    """Import times of `function` in fresh interpreters, compiling our modules each time or not."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not cached_bytecode:  # installed packages keep the bytecode pip compiled; ours has none
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for cache in [*ROOT.glob("api/**/__pycache__"), *ROOT.glob("lib/**/__pycache__")]:
            shutil.rmtree(cache)
    code = (
        "import sys, time; t = time.perf_counter(); sys.path.insert(0, '.');"
        f"import importlib.util as u; s = u.spec_from_file_location('function', {function!r});"
        "s.loader.exec_module(u.module_from_spec(s));"
        "print((time.perf_counter() - t) * 1000)"
    )
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=True
            ).stdout
        )
        for _ in range(rounds)
    ]


def line(name: str, direct: tuple[float, float], through: tuple[float, float], extra: str = "") -> None:
    (p50d, p99d), (p50g, p99g) = direct, through
    print(
        f"{name:<30} {p50d:8.2f} {p99d:8.2f} {p50g:9.2f} {p99g:9.2f} {p50g - p50d:+9.2f} {p99g - p99d:+9.2f}  {extra}"
    )


def p50_p99(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 0.5), percentile(samples, 0.99)


def gateway_env(upstream_url: str, data_dir: str, **extra: str) -> dict[str, str]:
    """A local server's environment in front of the fake: its own data, no rate limit in the way."""
    return {
        **os.environ,
        "POLLINATIONS_BASE_URL": upstream_url,
        "POLLINATIONS_API_KEY": "bench",
        "CLOUDGPT_DATA_DIR": data_dir,
        "RATE_LIMIT_CHAT_ANONYMOUS": "1000000000",
        **extra,
    }


def account_env(upstream_url: str, data_dir: str) -> dict[str, str]:
    """A local server signing in locally (no Supabase, not Vercel), no account or chat limit in the way."""
    env = gateway_env(
        upstream_url, data_dir, RATE_LIMIT_CHAT_AUTHENTICATED="1000000000", RATE_LIMIT_ACCOUNT="1000000000"
    )
    return {k: v for k, v in env.items() if not k.startswith(("SUPABASE_", "VERCEL"))}


def serve_upstream(ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    fake = FakePollinations().start()
    ready.put(fake.url)
    stop.wait()
    fake.stop()


def start_upstream() -> tuple[str, Callable[[], None]]:
    """A zero-delay fake Pollinations in its own process: its URL, and how to stop it.

    Its own process, so it and the clients never wait on each other's GIL.
    """
    ready, stop = multiprocessing.Queue(), multiprocessing.Event()
    upstream = multiprocessing.Process(target=serve_upstream, args=(ready, stop), daemon=True)
    upstream.start()

    def stop_upstream() -> None:
        stop.set()
        upstream.join(10)

    return ready.get(timeout=20), stop_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per sequential run")
    parser.add_argument("--connections", type=int, default=16, help="for the concurrent run")
    parser.add_argument("--seconds", type=int, default=10, help="per concurrent run")
    parser.add_argument(
        "--no-body-timeout",
        action="store_true",
        help="run the local server with this flag (bodies on threads)",
    )
    args = parser.parse_args()

    upstream_url, stop_upstream = start_upstream()
    direct_path = "/v1/chat/completions"
    with tempfile.TemporaryDirectory() as data_dir:
        env = gateway_env(upstream_url, data_dir)
        os.environ.update(env)
        flags = ("--no-body-timeout",) if args.no_body_timeout else ()
        gateway = Gateway(env, ("-m", "lib.devserver", "--port", "{port}", *flags))
        try:
            print(f"chat request latency in ms, loopback, {os.cpu_count()} cores")
            print(f"{'':<30} {'direct':>17} {'through CloudGPT':>19} {'added':>19}")
            print(f"{'':<30} {'p50':>8} {'p99':>8} {'p50':>9} {'p99':>9} {'p50':>9} {'p99':>9}")
            with httpx.Client(base_url=upstream_url) as up, httpx.Client(base_url=gateway.url) as gw:
                n = args.requests
                direct = p50_p99(sample(post(up, direct_path), n))
                line("sequential, local server", direct, p50_p99(sample(post(gw, "/api/chat"), n)))
                line("sequential, function alone", direct, p50_p99(sample(function_call(), n)))
                rounds = max(100, n // 5)
                line(
                    "first streamed event",
                    p50_p99([first_event(up, direct_path)() for _ in range(rounds)]),
                    p50_p99([first_event(gw, "/api/chat")() for _ in range(rounds)]),
                )
            if shutil.which("wrk"):
                c = args.connections
                d50, d99, drps = wrk(upstream_url + direct_path, c, args.seconds)
                cpu_before = tree_cpu_seconds(gateway.process.pid)
                g50, g99, grps = wrk(gateway.url + "/api/chat", c, args.seconds)
                cpu_after = tree_cpu_seconds(gateway.process.pid)
                cpu = (
                    f", server CPU {(cpu_after - cpu_before) / (grps * args.seconds) * 1e6:.0f} µs/request"
                    if cpu_before is not None and cpu_after is not None
                    else ""
                )
                line(f"{c} connections (wrk)", (d50, d99), (g50, g99), f"{drps:.0f} -> {grps:.0f} req/s{cpu}")
            else:
                print("wrk is not installed: concurrent run skipped (apt-get install wrk)")
        finally:
            gateway.stop()
            stop_upstream()
    for cached in (False, True):
        imports = cold_import_ms(15, cached)
        print(
            f"cold import of api/chat.py, {'with' if cached else 'without'} our bytecode cached: "
            f"median {statistics.median(imports):.1f} ms, max {max(imports):.1f} ms over 15 fresh interpreters"
        )


if __name__ == "__main__":
    main()
