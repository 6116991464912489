"""What passing media through CloudGPT costs: memory for a large video, and time to first byte.

Starts the fake Pollinations and MapleAI (in their own processes) and measures:

- peak memory while a 100 MB video passes through, per provider (Pollinations'
  direct answer, MapleAI's job then download):
  - the function alone, its WSGI `app` called in-process as Vercel's runtime calls
    it (tracemalloc peak of Python allocations, and growth of the peak RSS);
  - the function served by wsgiref, which buffers nothing (growth of the process's peak RSS);
  - the local server (granian, which holds at most four chunks of a response in its own queue);
- the time to the first byte of an image, direct to the fake, through the local
  server, and from the function alone (in-process), p50/p99 over sequential requests.

    .venv/bin/python bench/media.py              # --size-mb 100 --requests 500
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import load_function, p50_p99, wsgi_post  # noqa: E402
from tests.conftest import Gateway  # noqa: E402
from tests.fakes.mapleai import FakeMapleAI  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402

MAPLEAI_KEY = "bench"


def serve_fakes(ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    pollinations, mapleai = FakePollinations().start(), FakeMapleAI(MAPLEAI_KEY).start()
    ready.put((pollinations.url, mapleai.url))
    stop.wait()
    pollinations.stop()
    mapleai.stop()


def peak_rss_kib(pid: int | str = "self") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def drain(client: httpx.Client, body: dict[str, object]) -> tuple[int, float]:
    """(bytes, MB/s from the first byte on: a MapleAI job's polling is not transfer time)."""
    with client.stream("POST", "/api/video", json=body) as response:
        assert response.status_code == 200, response.read()
        chunks = response.iter_raw()
        total = len(next(chunks))
        started = time.perf_counter()
        total += sum(len(chunk) for chunk in chunks)
        return total, total / (time.perf_counter() - started) / 1e6


def in_process(body: dict[str, object], size: int) -> tuple[int, int]:
    """(tracemalloc peak KiB, peak RSS growth KiB) of api/video.py's app passing `body`'s video."""
    module = load_function("api/video.py")

    def call(payload: dict[str, object]) -> int:
        statuses: list[str] = []
        chunks = module.app(
            wsgi_post("/api/video", json.dumps(payload).encode()), lambda s, h: statuses.append(s)
        )
        total = sum(len(chunk) for chunk in chunks)
        assert statuses == ["200 OK"], statuses
        return total

    call({**body, "prompt": "big:1048576"})  # warm: imports, connection pool
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    assert call(body) == size
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def served(gateway: Gateway, body: dict[str, object], size: int) -> tuple[int, float]:
    """(peak RSS growth KiB of the serving process, MB/s) passing `body`'s video through it.

    The local server's one worker serves it, a child of the process started.
    """
    drain(gateway.client, {**body, "prompt": "big:1048576"})
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    serving = children[0] if children else pid
    before = peak_rss_kib(serving)
    total, rate = drain(gateway.client, body)
    assert total == size
    return peak_rss_kib(serving) - before, rate


def first_byte(client: httpx.Client, method: str, path: str, **kwargs: object) -> Callable[[], float]:
    def call() -> float:
        started = time.perf_counter()
        with client.stream(method, path, **kwargs) as response:
            chunks = response.iter_raw()
            next(chunks)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200
            for _ in chunks:
                pass
        return elapsed

    return call


def first_chunk_in_process() -> Callable[[], float]:
    """api/image.py's app called in-process: ms until it yields the image's first chunk."""
    module = load_function("api/image.py")
    raw = json.dumps({"prompt": "a red fox", "model": "flux"}).encode()

    def call() -> float:
        started = time.perf_counter()
        chunks = iter(module.app(wsgi_post("/api/image", raw), lambda status, headers: None))
        next(chunks)
        elapsed = (time.perf_counter() - started) * 1000
        for _ in chunks:
            pass
        return elapsed

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="the large video, in MB (10^6 bytes)")
    parser.add_argument("--requests", type=int, default=500, help="per time-to-first-byte run")
    args = parser.parse_args()
    size = args.size_mb * 1000 * 1000

    ready, stop = multiprocessing.Queue(), multiprocessing.Event()
    fakes = multiprocessing.Process(target=serve_fakes, args=(ready, stop), daemon=True)
    fakes.start()
    pollinations_url, mapleai_url = ready.get(timeout=20)
    data_dir = tempfile.mkdtemp()
    env = {
        **os.environ,
        "POLLINATIONS_BASE_URL": pollinations_url,
        "MAPLEAI_BASE_URL": mapleai_url,
        "MAPLEAI_API_KEY": MAPLEAI_KEY,
        "CLOUDGPT_DATA_DIR": data_dir,
        "RATE_LIMIT_IMAGE_ANONYMOUS": "1000000000",
        "RATE_LIMIT_VIDEO_ANONYMOUS": "1000000000",
    }
    os.environ.update(env)
    local = Gateway(env, ("-m", "lib.devserver", "--port", "{port}", "--workers", "1"))
    function = Gateway(env, ("-m", "tests.function_server", "api/video.py", "--port", "{port}"))
    try:
        print(
            f"peak memory passing a {args.size_mb} MB video through, KiB ({os.cpu_count()} cores, loopback)"
        )
        print(f"{'':<14} {'in-process':>22} {'wsgiref':>18} {'local server (granian)':>26}")
        print(
            f"{'':<14} {'tracemalloc':>11} {'RSS +':>10} {'RSS +':>8} {'MB/s':>9} {'RSS +':>14} {'MB/s':>11}"
        )
        for model in ("veo", "mapleai-veo"):
            body = {"prompt": f"big:{size}", "model": model}
            traced, rss = in_process(body, size)
            function_rss, function_rate = served(function, body, size)
            local_rss, local_rate = served(local, body, size)
            print(
                f"{model:<14} {traced:>11} {rss:>10} {function_rss:>8} {function_rate:>9.0f} "
                f"{local_rss:>14} {local_rate:>11.0f}"
            )
        print(f"\ntime to first byte of an image, ms, {args.requests} sequential requests")
        print(f"{'':<32} {'p50':>8} {'p99':>8}")
        with httpx.Client(base_url=pollinations_url) as up, httpx.Client(base_url=local.url) as gw:
            n = args.requests
            direct = first_byte(
                up, "GET", "/image/a%20red%20fox?model=flux&width=1024&height=1024&nologo=true"
            )
            through = first_byte(gw, "POST", "/api/image", json={"prompt": "a red fox", "model": "flux"})
            alone = first_chunk_in_process()
            for call in (direct, through, alone):  # warm-up
                for _ in range(min(n, 50)):
                    call()
            d50, d99 = p50_p99([direct() for _ in range(n)])
            g50, g99 = p50_p99([through() for _ in range(n)])
            f50, f99 = p50_p99([alone() for _ in range(n)])
            print(f"{'direct to the fake':<32} {d50:>8.2f} {d99:>8.2f}")
            print(
                f"{'through the local server':<32} {g50:>8.2f} {g99:>8.2f}  added {g50 - d50:+.2f} {g99 - d99:+.2f}"
            )
            print(
                f"{'the function alone, in-process':<32} {f50:>8.2f} {f99:>8.2f}  added {f50 - d50:+.2f} {f99 - d99:+.2f}"
            )
    finally:
        local.stop()
        function.stop()
        stop.set()
        fakes.join(5)


if __name__ == "__main__":
    main()
