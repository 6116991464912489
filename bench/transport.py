"""What one provider call costs the client: CloudGPT's transport beside an earlier one, httpx and h11.

The zero-delay fake Pollinations runs in its own process, so the CPU time this
process spends per call (`time.process_time`) is the client's alone: building and
writing the request, reading and parsing the answer, keeping the connection. Each
client makes the same keep-alive chat call the chat function makes: through
`lib.upstream` (`open_response` + `read_body`, the whole provider call), and on the
bare pool of this tree's `lib/transport.py` and of the one at `--before` (a git
revision, loaded from git as its own module), so both are measured in the same run,
rounds interleaved, on the same machine load.

Then the parsing alone, on the fake's own answer bytes: llhttp (httptools) and h11,
the two maintained sans-IO HTTP/1.1 parsers the transport could be built on.

    .venv/bin/python bench/transport.py            # --calls 2000 --rounds 5 --before b443523
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import h11
import httptools
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway import BODY, start_upstream  # noqa: E402

PATH = "/v1/chat/completions"
RAW_BODY = json.dumps(BODY, separators=(",", ":")).encode()


def transport_call(base: str) -> Callable[[], bytes]:
    from lib.upstream import Deadline, open_response, read_body

    def call() -> bytes:
        deadline = Deadline.start(10)
        response = open_response(
            "pollinations", "POST", base + PATH, api_key="bench", json_body=BODY, deadline=deadline
        )
        return read_body("pollinations", response, deadline)

    return call


def pool_call(transport: ModuleType, base: str) -> Callable[[], bytes]:
    """The same call on a bare `transport.Pool`: what the transport itself costs."""
    pool = transport.Pool("CloudGPT")
    headers = {
        "Accept": "application/json, text/event-stream, */*",
        "Authorization": "Bearer bench",
        "Content-Type": "application/json",
    }

    def call() -> bytes:
        response = pool.request(
            "POST", base + PATH, headers=headers, body=RAW_BODY,
            connect_timeout=10, write_timeout=10, first_byte_timeout=10,
        )  # fmt: skip
        body = b""
        while chunk := response.read(10):
            body += chunk
        response.close()
        return body

    return call


def transport_at(revision: str) -> ModuleType:
    """lib/transport.py as it was at `revision`, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:lib/transport.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader(f"transport_{revision}", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:lib/transport.py", "exec"), module.__dict__)
    return module


def httpx_call(base: str) -> Callable[[], bytes]:
    client = httpx.Client(base_url=base, timeout=10)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

    def call() -> bytes:
        return client.post(PATH, content=RAW_BODY, headers=headers).content

    return call


def h11_call(base: str) -> Callable[[], bytes]:
    """The smallest keep-alive client h11 allows: what a transport built on h11 would do per call."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", parts.netloc),
        ("User-Agent", "CloudGPT"),
        ("Accept-Encoding", "identity"),
        ("Authorization", "Bearer bench"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(RAW_BODY))),
    ]

    def call() -> bytes:
        if connection.our_state is h11.DONE:
            connection.start_next_cycle()
        sock.sendall(
            connection.send(h11.Request(method="POST", target=PATH, headers=headers))
            + connection.send(h11.Data(data=RAW_BODY))
            + connection.send(h11.EndOfMessage())
        )
        body = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body

    return call


def per_call(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(p50 wall µs, client CPU µs) per call over `calls` calls, after a warm-up."""
    for _ in range(200):
        call()
    walls = []
    cpu = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    return statistics.median(walls) * 1e6, cpu / calls * 1e6


class _Events:
    """httptools' callbacks, as the transport sets them: status, fields, body."""

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        pass

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.done = True


def parse_httptools(answer: bytes) -> None:
    events = _Events()
    parser = httptools.HttpResponseParser(events)
    parser.feed_data(answer)
    assert events.done and parser.get_status_code() == 200


def parse_h11(answer: bytes) -> None:
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="POST", target=PATH, headers=[("Host", "x"), ("Content-Length", "0")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(answer)
    while not isinstance(connection.next_event(), h11.EndOfMessage):
        pass


def parse_µs(parse: Callable[[bytes], None], answer: bytes, n: int = 20000) -> float:
    """CPU µs per parse (CPU time, as the machine may be shared)."""
    for _ in range(1000):
        parse(answer)
    started = time.process_time()
    for _ in range(n):
        parse(answer)
    return (time.process_time() - started) / n * 1e6


def raw_answer(base: str) -> bytes:
    """The fake's answer to the chat call, byte for byte."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        sock.sendall(
            f"{head}Content-Length: {len(RAW_BODY)}\r\nConnection: close\r\n\r\n".encode() + RAW_BODY
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer.replace(b"Connection: close\r\n", b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median round is shown")
    parser.add_argument("--before", default="b443523", help="the git revision whose transport is compared")
    args = parser.parse_args()
    from lib import transport

    before = transport_at(args.before)
    base, stop = start_upstream()
    try:
        clients: dict[str, Callable[[str], Callable[[], bytes]]] = {
            "lib.upstream call": transport_call,
            "Pool, this tree": lambda base: pool_call(transport, base),
            f"Pool at {args.before}": lambda base: pool_call(before, base),
            "h11 client": h11_call,
            "httpx": httpx_call,
        }
        calls = {name: make(base) for name, make in clients.items()}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits all alike
            for name, call in calls.items():
                results[name].append(per_call(call, args.calls))
        print(f"one chat call to the fake provider (own process), keep-alive, median of {args.rounds} rounds")
        print(f"{'client':<22} {'p50 wall µs':>12} {'client CPU µs':>14}")
        for name, rounds in results.items():
            wall = statistics.median(w for w, _ in rounds)
            cpu = statistics.median(c for _, c in rounds)
            print(f"{name:<22} {wall:12.1f} {cpu:14.1f}")
        answer = raw_answer(base)
    finally:
        stop()
    print(f"\nparsing the fake's {len(answer)}-byte answer alone")
    print(f"httptools (llhttp), the transport's callbacks      {parse_µs(parse_httptools, answer):7.2f} µs")
    print(f"h11, a new connection: its request and the answer {parse_µs(parse_h11, answer):7.2f} µs")


if __name__ == "__main__":
    main()
