"""A fault-injecting OpenAI-style chat upstream on loopback (MapleAI's chat endpoint).

It serves `POST /v1/chat/completions` as MapleAI's reference describes it (Bearer
auth, JSON or SSE, OpenAI's error shape) and fails on demand. The last message's
content picks the behaviour; text after a space is ignored, so a test can make its
marker unique ("once:500 t1"):

    "status:CODE"       answer that status every time (429 without Retry-After)
    "retry-after:N"     429 with `Retry-After: N` every time
    "once:CODE"         that status for the first request with this content, then success
    "reset"             drop the connection with a TCP reset, no answer
    "silent"            read the request and never answer
    "slow:S"            wait S seconds before the status line
    "slowfirst:S"       (stream) headers at once, the first event after S seconds
    "cut"               (stream) two events, then drop the connection
    "stall"             (stream) two events, then nothing (the connection stays open)
    "malformed"         (stream) one event that is not JSON
    "nodone"            (stream) every event, ending in finish_reason "stop", but no [DONE]
    "burst"             (stream) headers and the whole stream in one write
    "nested"            an answer (or, streaming, an event) nested 100,000 arrays deep
    "endless"           (stream) one event, then a line that never ends (8 MiB without a newline)
    "drip:NAME"         (stream) an event every 50 ms for 10 s; a caller that leaves is
                        recorded in `disconnected` under NAME

Anything else is echoed back. `always` makes every request fail the same way (an
upstream that is down). Every request is recorded with the time it arrived.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.openai_chat import completion, event, last_content
from tests.fakes.server import FakeHandler, LoopbackFake

COMPLETION_ID = "chatcmpl-maple"
NESTING = 100_000


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class FaultyUpstream(LoopbackFake):
    def __init__(self, always: str | None = None) -> None:
        self.always = always
        self.requests: list[Recorded] = []
        self.seen: Counter[str] = Counter()
        self.disconnected: dict[str, float] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        super().__init__(_handler(self))

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

    def received(self, content: str) -> list[Recorded]:
        """Every request whose last message's content was `content`, oldest first."""
        return [r for r in self.requests if isinstance(r.body, dict) and last_content(r.body) == content]

    def _count(self, content: str) -> int:
        with self._lock:
            self.seen[content] += 1
            return self.seen[content]

    def hang_up_mid_stream(self, gateway_port: int, name: str) -> float:
        """Stream "drip:NAME" through a gateway, hang up after the first event, and
        return the seconds until the gateway closed its request to this fake."""
        body = {
            "model": "mapleai-gpt4o",
            "messages": [{"role": "user", "content": f"drip:{name}"}],
            "stream": True,
        }
        payload = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", gateway_port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            received = b""
            while b"chat.completion.chunk" not in received:
                more = sock.recv(65536)
                if not more:
                    raise AssertionError("the gateway closed the stream before its first event")
                received += more
            left = time.monotonic()
        while name not in self.disconnected and time.monotonic() < left + 10:
            time.sleep(0.005)
        return self.disconnected.get(name, float("inf")) - left


def _error(status: int, authorization: str) -> dict[str, Any]:
    # A careless provider: the 400 quotes the credential, the 500 a stack trace.
    details = {
        400: f"messages[0].content is too long (request authorized as '{authorization}')",
        500: 'Traceback (most recent call last):\n  File "/srv/maple/app.py", line 12, in chat',
    }
    return {
        "error": {"message": details.get(status, f"upstream error {status}"), "type": "error", "code": status}
    }


def _handler(fake: FaultyUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def _status(self, status: int, extra: dict[str, str] | None = None) -> None:
            self.send_json(status, _error(status, self.headers.get("Authorization", "")), extra)

        def do_POST(self) -> None:
            body = self.read_json()
            fake.requests.append(Recorded(self.path, dict(self.headers.items()), body, time.monotonic()))
            if self.path != "/v1/chat/completions" or not isinstance(body, dict):
                self._status(404)
                return
            content = last_content(body)
            marker = fake.always or content.split(" ")[0]
            verb, _, argument = marker.partition(":")
            model = str(body.get("model"))
            if verb == "once" and fake._count(content) == 1:
                verb = "status"
            if verb == "slow":
                time.sleep(float(argument))
            if verb == "status":
                self._status(int(argument))
            elif verb == "retry-after":
                self._status(429, {"Retry-After": argument})
            elif verb == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
            elif verb == "silent":
                fake.stopping.wait(10)
                self.close_connection = True
            elif verb == "nested" and not body.get("stream"):
                self.send(200, b"[" * NESTING + b"]" * NESTING, "application/json")
            elif body.get("stream"):
                self._stream(model, verb, argument, content)
            else:
                self.send_json(200, completion(COMPLETION_ID, model, f"echo: {content}"))

        def _stream(self, model: str, verb: str, argument: str, content: str) -> None:
            events = [
                event(COMPLETION_ID, model, {"role": "assistant", "content": ""}),
                event(COMPLETION_ID, model, {"content": "echo:"}),
                event(COMPLETION_ID, model, {"content": content}),
                event(COMPLETION_ID, model, {}, "stop"),
                b"data: [DONE]\n\n",
            ]
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            if verb == "burst":
                body = b"".join(f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events)
                self.wfile.write(head + body + b"0\r\n\r\n")
                return
            self.wfile.write(head)
            self.wfile.flush()
            if verb == "slowfirst":
                time.sleep(float(argument))
            if verb == "drip":
                self._drip(model, argument)
                return
            for line in events[:2]:
                self.write_chunk(line)
            if verb == "cut":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if verb == "stall":
                fake.stopping.wait(10)
                self.close_connection = True
                return
            if verb == "malformed":
                self.write_chunk(b"data: {not json\n\n")
            if verb == "nested":
                self.write_chunk(b"data: " + b"[" * NESTING + b"]" * NESTING + b"\n\n")
            if verb == "endless":
                self._endless()
                return
            for line in events[2:4]:
                self.write_chunk(line)
            if verb != "nodone":
                self.write_chunk(events[4])
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _endless(self) -> None:
            try:
                self.write_chunk(b'data: {"x": "')
                for _ in range(128):
                    self.write_chunk(b"a" * 65536)
            except OSError:
                pass  # the gateway gave up on the line, as it should
            self.close_connection = True

        def _drip(self, model: str, name: str) -> None:
            deadline = time.monotonic() + 10
            try:
                while time.monotonic() < deadline and not fake.stopping.is_set():
                    self.write_chunk(event(COMPLETION_ID, model, {"content": "."}))
                    time.sleep(0.05)
            except OSError:
                fake.disconnected[name] = time.monotonic()
            self.close_connection = True

    return Handler
