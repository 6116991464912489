"""HTTP/1.1 to providers over pooled keep-alive connections: little work per call, every wait resumable.

A gateway's own cost is what it adds to each provider call, so the client is small:
one request written in one send, one status line and a few headers parsed, the body
handed on as it arrives. Bytes are buffered here, not in a parser that gives up on a
timeout, so a wait for the next bytes can end (`ReadTimeout`), let the caller send a
keep-alive, and be taken up again on the same response.

Bodies are asked for without content coding (`Accept-Encoding: identity`), so their
bytes and lengths are the provider's own; one that comes encoded anyway is refused.
A connection can be pinned to addresses checked beforehand, so the name is not
resolved a second time between the check and the connection.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

Address = tuple[int, tuple]  # a socket family and an address of that family, as getaddrinfo gives them

_HEAD_LIMIT = 64 * 1024  # the status line and headers together
_LINE_LIMIT = 4 * 1024  # a chunk-size line
_RECEIVE = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # body bytes read on close to keep a connection
_IDLE_LIMIT = 32  # idle connections kept per origin
_IDLE_SECONDS = 30.0  # an idle connection older than this may have been dropped without a word
_NO_BODY_STATUSES = frozenset({204, 304})
_HEX = frozenset(b"0123456789abcdefABCDEF")


class TransportError(Exception):
    """The exchange failed on the wire: no connection, a reset, or an answer cut short."""


class ConnectTimeout(TransportError):
    """No connection (with its TLS handshake) within the connect timeout."""


class ReadTimeout(TransportError):
    """Nothing arrived for the whole wait; the response can still be read on."""


class ProtocolError(TransportError):
    """The peer's bytes are not an HTTP/1.1 answer this client reads."""


class Headers:
    """A response's header fields, looked up regardless of case; repeated fields joined by ", "."""

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            self._fields[key] = f"{self._fields[key]}, {value}" if key in self._fields else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


@dataclass(eq=False)
class _Connection:
    """One socket to an origin and the bytes read from it that no response has taken yet."""

    origin: tuple[str, str, int]
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    idle_since: float = 0.0

    def fill(self, until: float) -> bool:
        """Wait until the monotonic time `until` for more bytes; False when the peer closed."""
        wait = until - time.monotonic()
        if wait <= 0:
            raise ReadTimeout()
        try:
            self.sock.settimeout(wait)
            data = self.sock.recv(_RECEIVE)
        except TimeoutError:
            raise ReadTimeout() from None
        except OSError as error:  # a reset, or a TLS record that does not verify
            raise TransportError(f"the connection failed: {error}") from None
        self.buffer += data
        return bool(data)

    def reusable(self) -> bool:
        """Idle, recent and still open: a closed socket polls readable (its end of file)."""
        if time.monotonic() - self.idle_since > _IDLE_SECONDS:
            return False
        poller = select.poll()  # unlike select(), not limited to descriptors below 1024
        poller.register(self.sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)

    def close(self) -> None:
        self.sock.close()


class Response:
    """A provider's answer: status and headers at once, then the body as it arrives.

    `read` returns the next bytes, b"" once the body is over. `close` hands a fully
    read connection back to its pool and closes any other.
    """

    def __init__(
        self,
        pool: Pool,
        connection: _Connection,
        status_code: int,
        headers: Headers,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self._pool = pool
        self._connection: _Connection | None = connection
        self._left = length  # bytes of the body (or of the current chunk) still to come
        self._chunked = chunked
        self._keep_alive = keep_alive and (chunked or length is not None)
        self._state = "size" if chunked else "data"
        self._done = length == 0 and not chunked

    def read(self, timeout: float) -> bytes:
        """The next bytes of the body, waiting at most `timeout` seconds for them; b"" at its end."""
        until = time.monotonic() + timeout
        connection = self._connection
        if connection is None:
            return b""
        while not self._done:
            data = self._take(connection.buffer)
            if data:
                return data
            if self._done:
                break
            if not connection.fill(until):
                if self._left is None and not self._chunked:
                    self._done = True  # a body without a length ends where the connection does
                    break
                raise TransportError("the connection closed before the answer was complete")
        return b""

    def _take(self, buffer: bytearray) -> bytes:
        """As much of the body as `buffer` holds, consumed from it; advances the chunk framing."""
        if not self._chunked:
            if self._left is None:
                data = bytes(buffer)
                del buffer[:]
                return data
            data = bytes(buffer[: self._left])
            del buffer[: len(data)]
            self._left -= len(data)
            self._done = self._left == 0
            return data
        while True:
            if self._state == "data":
                assert self._left is not None
                data = bytes(buffer[: self._left])
                del buffer[: len(data)]
                self._left -= len(data)
                if self._left == 0:
                    self._state = "data-end"
                if data:
                    return data
                if self._state == "data":
                    return b""
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                if len(buffer) > _LINE_LIMIT:
                    raise ProtocolError("a chunk's framing line is too long")
                return b""
            line = bytes(buffer[:line_end])
            del buffer[: line_end + 2]
            if self._state == "data-end":
                if line:
                    raise ProtocolError("a chunk did not end where its size said")
                self._state = "size"
            elif self._state == "size":
                size = line.split(b";", 1)[0].strip()  # a chunk extension after ";" is ignored
                if not 0 < len(size) <= 16 or not set(size) <= _HEX:
                    raise ProtocolError("a chunk size is not a hexadecimal number")
                self._left = int(size, 16)
                self._state = "data" if self._left else "trailers"
            elif not line:  # the blank line after the trailers
                self._done = True
                return b""

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep_alive and not self._done:
            self._finish(connection)
        if self._done and self._keep_alive and not connection.buffer:
            self._pool.release(connection)
        else:
            connection.close()

    def _finish(self, connection: _Connection) -> None:
        """Read the rest of the body if it is already here, without waiting.

        A stream's reader stops at its last event (`data: [DONE]`), before the
        chunked body's closing framing; taking that too keeps the connection for
        the next call. A body with more than a little left is not worth reading.
        """
        left = _DRAIN_LIMIT
        try:
            for _ in range(2):  # what is buffered, then what reads that do not wait bring, twice at most
                while not self._done and (data := self._take(connection.buffer)):
                    left -= len(data)
                    if left < 0:
                        return
                if self._done:
                    return
                connection.sock.settimeout(0.0)
                data = connection.sock.recv(_RECEIVE)
                if not data:
                    return
                connection.buffer += data
        except (OSError, ProtocolError):  # nothing more is here yet, or it is not HTTP
            return


class Pool:
    """Keep-alive connections per origin (scheme, host, port), shared by a process's threads."""

    def __init__(self, user_agent: str, tls: ssl.SSLContext | None = None) -> None:
        self._user_agent = user_agent
        self._tls = tls  # None: certificates verified against certifi's roots
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        connect_timeout: float,
        write_timeout: float,
        first_byte_timeout: float,
        addresses: Sequence[Address] | None = None,
    ) -> Response:
        """Send a request and wait for its answer's status line and headers.

        `addresses`, when given, are the only ones connected to (for a host checked
        beforehand). Raises ConnectTimeout, ReadTimeout (no answer within
        `first_byte_timeout`), ProtocolError, or TransportError.
        """
        origin, target, host_header = _parse(url)
        fields = {
            "Host": host_header,
            "User-Agent": self._user_agent,
            "Accept-Encoding": "identity",
            **headers,
        }
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body or b""))
        lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.items())]
        head = "\r\n".join(lines)
        # Each field adds one line break; any other (or a NUL) would let a value start a field of its own.
        if "\0" in head or head.count("\n") != len(fields) or head.count("\r") != len(fields):
            raise ValueError("a request line or header field carries a line break or NUL")
        message = (head + "\r\n\r\n").encode("latin-1") + (body or b"")
        connection = self._idle_connection(origin) or _connect(origin, connect_timeout, addresses, self._tls)
        try:
            try:
                connection.sock.settimeout(write_timeout)
                connection.sock.sendall(message)
            except TimeoutError:
                raise TransportError("the request could not be written in time") from None
            except OSError as error:
                raise TransportError(f"the request could not be written: {error}") from None
            return self._answer(connection, method, time.monotonic() + first_byte_timeout)
        except BaseException:
            connection.close()
            raise

    def _answer(self, connection: _Connection, method: str, until: float) -> Response:
        while True:
            status, fields, version = _head(connection, until)
            if not 100 <= status < 200 or status == 101:
                break  # an interim answer (100 Continue, 103 Early Hints) precedes the real one
        headers = Headers(fields)
        coding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if coding != "identity":
            raise ProtocolError(f"the answer came encoded as {coding}, which was not asked for")
        tokens = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
        keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        length: int | None = None
        chunked = False
        if method == "HEAD" or status in _NO_BODY_STATUSES or status == 101:
            length = 0
        elif "Transfer-Encoding" in headers:
            chunked = headers["Transfer-Encoding"].rsplit(",", 1)[-1].strip().lower() == "chunked"
        elif "Content-Length" in headers:
            values = {v.strip() for v in headers["Content-Length"].split(",")}
            value = values.pop()
            if values or not value.isdigit() or not value.isascii():
                raise ProtocolError("the answer's Content-Length is not one number")
            length = int(value)
        return Response(self, connection, status, headers, length, chunked, keep_alive)

    def _idle_connection(self, origin: tuple[str, str, int]) -> _Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None or connection.reusable():
                return connection
            connection.close()

    def release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(connection.origin, [])
            if len(idle) < _IDLE_LIMIT:
                idle.append(connection)
                return
        connection.close()


def _parse(url: str) -> tuple[tuple[str, str, int], str, str]:
    """The origin, the request target and the Host header of an http(s) URL."""
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, host, port), target, host_header


def _head(connection: _Connection, until: float) -> tuple[int, list[tuple[str, str]], str]:
    """The next status line and header fields from the connection, consumed from its buffer."""
    buffer = connection.buffer
    while (end := buffer.find(b"\r\n\r\n", 0, _HEAD_LIMIT)) < 0:
        if len(buffer) >= _HEAD_LIMIT:
            raise ProtocolError("the answer's headers are too large")
        if not connection.fill(until):
            raise TransportError("the connection closed before an answer")
    raw = bytes(buffer[:end]).decode("latin-1")
    del buffer[: end + 4]
    status_line, *field_lines = raw.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not (code.isdigit() and code.isascii()):
        raise ProtocolError("the answer does not start with an HTTP/1 status line")
    fields = []
    for line in field_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError("the answer has a malformed header field")
        fields.append((name, value.strip()))
    return int(code), fields, version


def _connect(
    origin: tuple[str, str, int],
    timeout: float,
    addresses: Sequence[Address] | None,
    tls: ssl.SSLContext | None,
) -> _Connection:
    scheme, host, port = origin
    until = time.monotonic() + timeout
    try:
        if addresses is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        else:
            sock = _connect_to(addresses, until)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            sock.settimeout(max(until - time.monotonic(), 0.001))
            sock = (tls or _tls()).wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        raise ConnectTimeout(f"no connection to {host} within {timeout:g} seconds") from None
    except OSError as error:  # refused, unreachable, a name that does not resolve, a certificate refused
        raise TransportError(f"no connection to {host}: {error}") from None
    return _Connection(origin, sock)


def _connect_to(addresses: Sequence[Address], until: float) -> socket.socket:
    """A connection to the first of `addresses` that accepts one."""
    failure: OSError = OSError("no address to connect to")
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(until - time.monotonic(), 0.001))
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            failure = error
            if isinstance(error, TimeoutError):
                break
    raise failure


@cache
def _tls() -> ssl.SSLContext:
    """Certificates verified against Mozilla's roots (certifi), as the platform's own may be missing."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())
