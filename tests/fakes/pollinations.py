"""A fake Pollinations on loopback: the chat endpoint of gen.pollinations.ai's OpenAPI document.

It answers `POST /v1/chat/completions` as JSON or SSE, and its error statuses in
Pollinations' own error shape. The last message's content picks the behaviour:

    "status:429"     answer that status in Pollinations' error body
    "slow:0.5"       wait that many seconds before the status line
    "html"           200 with an HTML page instead of a completion
    "cut"            (stream) two chunks, then drop the connection
    "nodone"         (stream) every chunk but no `data: [DONE]`
    "malformed"      (stream) one chunk that is not JSON
    "errorevent"     (stream) one chunk, then an error event in OpenAI's shape
    "gate:NAME"      (stream) first chunk, then wait until the test opens gate NAME

Anything else is echoed back. Every request is recorded for the tests to inspect.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakePollinations:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.gates: dict[str, threading.Event] = {}
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakePollinations:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def gate(self, name: str) -> threading.Event:
        return self.gates.setdefault(name, threading.Event())

    def received(self, marker: str) -> Recorded:
        """The request whose last message's content was `marker`."""
        for request in reversed(self.requests):
            if isinstance(request.body, dict) and _last_content(request.body) == marker:
                return request
        raise LookupError(marker)


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections under a burst
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (load generators do) are not the fake's concern


def _last_content(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content")
    return content if isinstance(content, str) else ""


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        "user_tier": "seed",
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    event = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _error_body(status: int) -> dict[str, Any]:
    codes = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 402: "PAYMENT_REQUIRED", 429: "RATE_LIMITED"}
    return {
        "status": status,
        "success": False,
        "error": {
            "code": codes.get(status, "INTERNAL_ERROR"),
            "message": f"fake upstream error {status}",
            "timestamp": "2026-01-01T00:00:00Z",
            "details": {},
        },
    }


def _handler(fake: FakePollinations) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            fake.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
            if self.path != "/v1/chat/completions" or not isinstance(body, dict):
                self._send(404, json.dumps(_error_body(404)).encode(), "application/json")
                return
            content = _last_content(body)
            model = body.get("model", "openai")
            verb, _, argument = content.partition(":")
            if verb == "slow":
                time.sleep(float(argument))
            if verb == "status":
                status = int(argument)
                extra = {"Retry-After": "7"} if status == 429 else {}
                self._send(status, json.dumps(_error_body(status)).encode(), "application/json", extra)
            elif verb == "html":
                self._send(200, b"<html><body>Oh snap</body></html>", "text/html")
            elif body.get("stream"):
                self._stream(model, verb, argument, content)
            else:
                self._send(
                    200, json.dumps(_completion(model, f"echo: {content}")).encode(), "application/json"
                )

        def _stream(self, model: str, verb: str, argument: str, content: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunk(_chunk(model, {"role": "assistant", "content": ""}))
            if verb == "gate":
                self._write_chunk(_chunk(model, {"content": "first"}))
                fake.gate(argument).wait(10)
            if verb == "cut":
                self._write_chunk(_chunk(model, {"content": "partial"}))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if verb == "malformed":
                self._write_chunk(b"data: {not json\n\n")
            if verb == "errorevent":
                self._write_chunk(b'data: {"error": {"message": "model overloaded", "code": 500}}\n\n')
            for word in ("echo:", content):
                self._write_chunk(_chunk(model, {"content": word}))
            self._write_chunk(_chunk(model, {}, "stop"))
            if verb != "nodone":
                self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
