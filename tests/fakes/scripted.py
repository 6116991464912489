"""A server on loopback that answers each request with exact bytes, sent in the pieces a test chooses.

What a real provider's server never sends on purpose (a chunk size split over two
packets, a header block with no end, a body cut short) is what a client must still
read right, or refuse cleanly; this server sends it byte for byte.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Self

Reply = list[bytes | float]  # bytes to send, or seconds to wait before the next piece


class ScriptedServer:
    """Answers requests in order with `replies(n)` for the n-th request (from 0); records what came."""

    def __init__(
        self,
        replies: Callable[[int], Reply],
        *,
        close_after_reply: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.replies = replies
        self.close_after_reply = close_after_reply
        self.tls = tls  # a server context: connections are TLS, each handshake in its own thread
        self.requests: list[bytes] = []  # each request's head and body
        self.connections = 0
        self.open_connections = 0  # those the client has not closed yet
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def close_idle_connections(self) -> None:
        """Hang up every connection, as a server whose keep-alive time has run out does."""
        with self._lock:
            for sock in self._open:
                # shutdown() first: a close() alone leaves a socket another thread reads from open.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_idle_connections()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self.open_connections += 1
                self._open.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        pending = b""
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._open.append(sock)
            while True:
                while b"\r\n\r\n" not in pending:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(pending) < length:
                    pending += sock.recv(65536)
                with self._lock:
                    number = len(self.requests)
                    self.requests.append(head + b"\r\n\r\n" + pending[:length])
                pending = pending[length:]
                for piece in self.replies(number):
                    if isinstance(piece, float):
                        time.sleep(piece)
                    else:
                        sock.sendall(piece)
                if self.close_after_reply:
                    return
        except OSError:
            pass
        finally:
            sock.close()
            with self._lock:
                self.open_connections -= 1


class Blackhole:
    """An address on loopback that never completes a connection: its listener's backlog is full.

    The kernel drops further SYNs, so a connect waits as for a host that does not answer.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0), backlog=0)
        self.address = self._listener.getsockname()
        self._fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(self.address)
            self._fillers.append(filler)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()
