"""What every fake provider shares: a threaded HTTP server on a free loopback port, served in the background."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections under a burst
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up (load generators and timeout tests do) are not a fake's concern


class LoopbackFake:
    """A fake serving `handler` on 127.0.0.1; `with fake:` (or start/stop) runs it in a daemon thread."""

    server_class: type[QuietServer] = QuietServer

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = self.server_class(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class FakeHandler(BaseHTTPRequestHandler):
    """A fake's request handler: HTTP/1.1 keep-alive as providers speak it, no access log.

    Headers and body leave at once: with Nagle's algorithm and the client's delayed
    ACK, every answer would take ~40 ms more, as no real server's does.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def read_json(self) -> Any:
        """The body parsed as JSON: None when empty, the raw bytes when it is not JSON."""
        raw = self.read_body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(
        self,
        status: int,
        data: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send(status, json.dumps(data).encode(), content_type, headers)

    def write_chunk(self, data: bytes) -> None:
        """One chunk of a `Transfer-Encoding: chunked` body, sent at once."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
