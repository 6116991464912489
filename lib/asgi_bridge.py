"""A WSGI app served over ASGI, so that a client slow to send its body holds no thread.

granian's WSGI interface hands a body to the app's thread as it arrives, with no
timeout: a client that stops midway holds that thread for as long as it stays. Here
the event loop reads each body whole, within a deadline, before a thread is taken;
the app then runs on a pool of threads, as under any WSGI server, and its answer goes
back chunk by chunk as it is produced (granian's ASGI queue holds four chunks before
the thread waits, so streams stay streams and memory stays flat). An app raising in
the middle of its answer ends it without its last chunk: the caller sees the cut.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from lib.web import WSGIApp

# In the environ of a request whose body was not all there by the deadline (its input is
# empty): the app answers it without waiting any longer.
BODY_LATE = "cloudgpt.body_late"

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _ClientGone(Exception):
    """The caller left while its answer was being sent."""


class WSGIBridge:
    """An ASGI app calling a WSGI `app` on `threads` threads with bodies read by the event loop.

    A body longer than `body_limit` is read only as far as one byte past it (the app
    refuses it), one declared longer is not read at all, and one that takes longer than
    `body_timeout` seconds to arrive is handed over empty and marked `BODY_LATE`.
    """

    def __init__(self, app: WSGIApp, *, threads: int, body_limit: int, body_timeout: float) -> None:
        self.app = app
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")
        self._constant = {
            "SCRIPT_NAME": "",
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        environ = self._environ(scope)
        body = b""
        if _has_body(environ) and self._declared_within_limit(environ):
            try:
                async with asyncio.timeout(self.body_timeout):
                    read = await self._read(receive)
            except TimeoutError:
                environ[BODY_LATE] = True
            else:
                if read is None:
                    return  # the client left: nobody to answer
                body = read
        environ["wsgi.input"] = io.BytesIO(body)
        exchange = _Exchange(asyncio.get_running_loop(), receive, send)
        try:
            await exchange.loop.run_in_executor(self._pool, self._call, environ, exchange)
        except _ClientGone:
            pass
        finally:
            exchange.done()

    def _environ(self, scope: dict[str, Any]) -> dict[str, Any]:
        """The request as PEP 3333 words it: the path percent-decoded, as latin-1, like every text."""
        server_host, server_port = scope.get("server") or ("localhost", 80)
        client_host, client_port = scope.get("client") or ("", 0)
        environ = {
            **self._constant,
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": unquote_to_bytes(scope["raw_path"]).decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_NAME": server_host,
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": "HTTP/" + scope["http_version"],
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": str(client_port),
            "wsgi.url_scheme": scope["scheme"],
        }
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = "HTTP_" + name
            value = raw_value.decode("latin-1")
            environ[name] = f"{environ[name]},{value}" if name in environ else value
        return environ

    def _declared_within_limit(self, environ: dict[str, Any]) -> bool:
        declared = environ.get("CONTENT_LENGTH", "")
        return not (declared.isdigit() and int(declared) > self.body_limit)

    async def _read(self, receive: Receive) -> bytes | None:
        """The body, or as much of it as is one byte past the limit; None when the client left."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if not message.get("more_body") or size > self.body_limit:
                return b"".join(parts)

    def _call(self, environ: dict[str, Any], exchange: _Exchange) -> None:
        """On a pool thread: call the app and send its answer, a list whole, any other chunk by chunk."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = (status, headers)

        body = self.app(environ, start_response)
        try:
            status, headers = started
            exchange.send({
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            })  # fmt: skip
            if isinstance(body, list):
                exchange.send({"type": "http.response.body", "body": b"".join(body)})
                return
            chunks = (chunk for chunk in body if chunk)
            for n, chunk in enumerate(chunks):
                if n == 1:  # a stream (most answers are one chunk): its client may leave midway
                    exchange.watch()
                exchange.send({"type": "http.response.body", "body": chunk, "more_body": True})
            exchange.send({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class _Exchange:
    """One request's answer, sent from a pool thread, and news of its client leaving.

    granian's ASGI `send` does its work at once and returns an empty awaitable, unless
    its queue of chunks is full: only then is the event loop asked to wait on it. This
    saves two thread switches per message, the whole answer of most requests.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, send: Send) -> None:
        self.loop = loop
        self._receive = receive
        self._send = send
        self._gone = False
        self._watcher: asyncio.Task[None] | None = None

    def send(self, message: Message) -> None:
        if self._gone:
            raise _ClientGone
        sent = self._send(message)
        if type(sent).__name__ != "PyEmptyAwaitable":
            asyncio.run_coroutine_threadsafe(_awaited(sent), self.loop).result()

    def watch(self) -> None:
        """Note when the client leaves, from now on: granian's sends never fail."""
        self.loop.call_soon_threadsafe(self._start_watching)

    def _start_watching(self) -> None:
        self._watcher = self.loop.create_task(self._disconnect())

    async def _disconnect(self) -> None:
        # Also returns once the answer is complete, when nothing more is sent anyway.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone = True

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


def _has_body(environ: dict[str, Any]) -> bool:
    """Whether the request says a body follows (HTTP/1.1: a length above zero, or chunked)."""
    return environ.get("CONTENT_LENGTH", "0") != "0" or "HTTP_TRANSFER_ENCODING" in environ
