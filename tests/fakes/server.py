"""What every fake provider shares: a threaded HTTP server on a free loopback port, served in the background."""

from __future__ import annotations

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
