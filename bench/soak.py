"""A soak run: mixed traffic at a steady rate through the local server, for minutes, with faults and hang-ups.

Chat (JSON and streamed) and images against the fake Pollinations, at `--rate`
requests a second for `--minutes`: most requests are plain, some carry a provider
fault (a 500, a stream cut midway, an HTML page, an image 503), some hang up early
(a stream before its first byte, a 4 MiB image after its first 64 KiB). Reported:
the gateway's RSS, open file descriptors and threads (its process and worker processes
together) after a warm-up and
at the end (and every minute), and the count of 5xx answers (or stream error
events) that no injected fault explains, which must be zero.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 10]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Gateway  # noqa: E402
from tests.fakes.pollinations import FakePollinations  # noqa: E402


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    fault: bool  # an injected fault: its 5xx (or stream error event) is expected


KINDS = (
    Kind("chat", 30, False),
    Kind("stream", 25, False),
    Kind("image", 20, False),
    Kind("hangup stream", 5, False),
    Kind("hangup image", 5, False),
    Kind("fault chat 500", 4, True),
    Kind("fault stream cut", 4, True),
    Kind("fault chat html", 4, True),
    Kind("fault image 503", 3, True),
)


def chat(content: str, stream: bool = False) -> dict:
    return {"model": "openai", "messages": [{"role": "user", "content": content}], "stream": stream}


def one(client: httpx.Client, url: str, kind: str, n: int) -> tuple[int, bool]:
    """Send one request of `kind`; (status, whether a stream ended in an error event)."""
    if kind == "chat":
        return client.post("/api/chat", json=chat(f"hello {n}")).status_code, False
    if kind in ("stream", "fault stream cut"):
        content = "cut" if kind == "fault stream cut" else f"stream {n}"
        response = client.post("/api/chat", json=chat(content, stream=True))
        return response.status_code, '"error"' in response.text
    if kind == "image":
        return client.post(
            "/api/image", json={"prompt": f"a lighthouse {n}", "model": "flux"}
        ).status_code, False
    if kind == "hangup stream":  # leave before the first byte
        short = httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=0.1))
        with short, contextlib.suppress(httpx.ReadTimeout):
            short.post("/api/chat", json=chat("slow:0.5", stream=True))
        return 0, False
    if kind == "hangup image":  # leave after the first 64 KiB of 4 MiB
        with httpx.Client(base_url=url, timeout=10) as short:
            body = {"prompt": "big:4194304", "model": "flux"}
            with short.stream("POST", "/api/image", json=body) as response:
                next(response.iter_bytes(65536), None)
                return response.status_code, False
    if kind == "fault chat 500":
        return client.post("/api/chat", json=chat("status:500")).status_code, False
    if kind == "fault chat html":
        return client.post("/api/chat", json=chat("html")).status_code, False
    if kind == "fault image 503":
        return client.post("/api/image", json={"prompt": "status:503", "model": "flux"}).status_code, False
    raise AssertionError(kind)


def process_state(pid: int) -> dict[str, int]:
    """RSS, open descriptors and threads of the server's process and its descendants (granian's workers)."""
    totals = {"rss_kib": 0, "fds": 0, "threads": 0}
    for each in process_tree(pid):
        try:
            status = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{each}/status").read_text().splitlines()
                if ":" in line
            )
            totals["fds"] += len(os.listdir(f"/proc/{each}/fd"))
        except FileNotFoundError:  # gone between the listing and the reading
            continue
        totals["rss_kib"] += int(status["VmRSS"].split()[0])
        totals["threads"] += int(status["Threads"])
    return totals


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append(each)
        for task in Path(f"/proc/{each}/task").glob("*/children"):
            with contextlib.suppress(FileNotFoundError):
                todo += [int(child) for child in task.read_text().split()]
    return found


def show(label: str, state: dict[str, int]) -> None:
    print(
        f"{label:<22} RSS {state['rss_kib'] / 1024:7.1f} MiB   fds {state['fds']:4d}   threads {state['threads']:3d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=10, help="requests a second")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the first reading")
    args = parser.parse_args()
    with FakePollinations() as upstream, tempfile.TemporaryDirectory() as data_dir:
        env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("UPSTASH_", "SUPABASE_", "MAPLEAI_"))
            },
            "POLLINATIONS_BASE_URL": upstream.url,
            "CLOUDGPT_DATA_DIR": data_dir,
            "UPSTREAM_BACKOFF": "0.01",
            **{f"RATE_LIMIT_{m}_ANONYMOUS": "1000000" for m in ("CHAT", "IMAGE", "VIDEO")},
        }
        gateway = Gateway(env)
        try:
            run(gateway, args)
        finally:
            gateway.stop()


def run(gateway: Gateway, args: argparse.Namespace) -> None:
    kinds = [kind for kind in KINDS for _ in range(kind.weight)]
    outcomes: Counter[tuple[str, str]] = Counter()
    unexplained: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    counter = itertools.count()

    def work(kind: Kind) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=gateway.url, timeout=30)
        n = next(counter)
        try:
            status, error_event = one(local.client, gateway.url, kind.name, n)
        except httpx.HTTPError as error:
            status, error_event = -1, False
            detail = type(error).__name__
        else:
            detail = str(status)
        bad = not kind.fault and (status >= 500 or status == -1 or error_event)
        with lock:
            outcomes[(kind.name, detail + (" +error event" if error_event else ""))] += 1
            if bad:
                unexplained.append(f"{kind.name}: {detail}{' +error event' if error_event else ''}")

    started = time.monotonic()
    end = started + args.minutes * 60
    interval = 1 / args.rate
    readings: list[tuple[float, dict[str, int]]] = []
    next_reading = started + args.warmup
    random.seed(16)
    with ThreadPoolExecutor(32) as pool:
        tick = started
        while tick < end:
            pool.submit(work, random.choice(kinds))
            now = time.monotonic()
            if now >= next_reading:
                readings.append((now - started, process_state(gateway.process.pid)))
                next_reading += 60
            tick += interval
            time.sleep(max(0.0, tick - time.monotonic()))
    readings.append((time.monotonic() - started, process_state(gateway.process.pid)))

    total = sum(outcomes.values())
    print(f"soak: {total} requests in {args.minutes:g} min at {args.rate:g}/s through the local server\n")
    for kind in KINDS:
        seen = ", ".join(f"{d}: {c}" for (k, d), c in sorted(outcomes.items()) if k == kind.name)
        print(f"  {kind.name:<18} {'(fault)' if kind.fault else '':<8} {seen}")
    print()
    for seconds, state in readings:
        show(f"at {seconds:6.0f} s", state)
    first, last = readings[0][1], readings[-1][1]
    print(
        f"\nfrom the first reading to the last: RSS {(last['rss_kib'] - first['rss_kib']) / 1024:+.1f} MiB, "
        f"fds {last['fds'] - first['fds']:+d}, threads {last['threads'] - first['threads']:+d}"
    )
    print(f"5xx (or stream error events) not caused by an injected fault: {len(unexplained)}")
    for line in unexplained[:20]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
