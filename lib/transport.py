"""HTTP/1.1 to providers over pooled keep-alive connections: little work per call, every wait resumable.

A gateway's own cost is what it adds to each provider call, so the client is small:
one request written in one send, the answer parsed by llhttp (Node's HTTP parser,
through `httptools`), the body handed on as it arrives. The parser is fed the bytes
as they come and keeps its place between them, so a wait for the next bytes can end
(`ReadTimeout`), let the caller send a keep-alive, and be taken up again on the same
response, without a thread.

Bodies are asked for without content coding (`Accept-Encoding: identity`), so their
bytes and lengths are the provider's own; one that comes encoded anyway, or framed by
any transfer coding but `chunked`, is refused. A connection can be pinned to
addresses checked beforehand, so the name is not resolved a second time between the
check and the connection.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Sequence
from functools import cache, lru_cache
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import ssl

    import httptools

Address = tuple[int, tuple]  # a socket family and an address of that family, as getaddrinfo gives them

IDLE_TOTAL = 32  # idle connections kept by a pool, all origins together; the oldest goes first
_IDLE_SECONDS = 30.0  # an idle connection older than this may have been dropped without a word
_HEAD_LIMIT = 64 * 1024  # the status line and headers together
_RECEIVE = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # body bytes read on close to keep a connection
# What a request target keeps as it is (RFC 3986's pchar, "/" and "%" for escapes already made);
# anything else, a space or a non-ASCII letter, is percent-encoded as UTF-8.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")


class TransportError(Exception):
    """The exchange failed on the wire: no connection, a reset, or an answer cut short."""


class ConnectTimeout(TransportError):
    """No connection (name resolved, TCP, TLS handshake) within the connect timeout."""


class ReadTimeout(TransportError):
    """Nothing arrived for the whole wait; the response can still be read on."""


class ProtocolError(TransportError):
    """The peer's bytes are not an HTTP/1.1 answer this client reads."""


class InvalidURL(ProtocolError):
    """A URL that cannot be sent as an HTTP request (a provider's link, most likely)."""


class Headers:
    """A response's header fields, looked up regardless of case; repeated fields joined by ", "."""

    def __init__(self, fields: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self._fields: dict[str, str] = {}
        for raw_name, raw_value in fields:
            key, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            self._fields[key] = f"{self._fields[key]}, {value}" if key in self._fields else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


class _Connection:
    """One socket to an origin, and when it was last put back idle."""

    __slots__ = ("idle_since", "origin", "sock")

    def __init__(self, origin: tuple[str, str, int], sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.idle_since = 0.0

    def receive(self, until: float) -> bytes:
        """The next bytes, waiting until the monotonic time `until`; b"" when the peer closed."""
        wait = until - time.monotonic()
        if wait <= 0:
            raise ReadTimeout()
        try:
            self.sock.settimeout(wait)
            return self.sock.recv(_RECEIVE)
        except TimeoutError:
            raise ReadTimeout() from None
        except OSError as error:  # a reset, or a TLS record that does not verify
            raise TransportError(f"the connection failed: {error}") from None

    def reusable(self) -> bool:
        """Idle, recent and still open: a closed socket polls readable (its end of file)."""
        if time.monotonic() - self.idle_since > _IDLE_SECONDS:
            return False
        poller = select.poll()  # unlike select(), not limited to descriptors below 1024
        poller.register(self.sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)

    def close(self) -> None:
        self.sock.close()


class _Events:
    """What llhttp reports of one answer: the final head's fields, body pieces, the end.

    Interim answers (100 Continue, 103 Early Hints) are parsed and skipped; a message
    begun after the answer ended is bytes no request asked for.
    """

    __slots__ = ("body", "done", "fields", "head", "head_size", "keep_alive", "parser", "stray")

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.head_size = 0  # the fields' bytes, interim answers' too
        self.body: list[bytes] = []
        self.head = False  # the final status line and fields are in
        self.done = False  # the answer is complete
        self.stray = False  # bytes after the answer
        # As the final head says: asked then, since llhttp forgets it once the message is over.
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser

    def on_message_begin(self) -> None:
        self.stray = self.done

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))
        self.head_size += len(name) + len(value)

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() >= 200:
            self.head = True
            self.keep_alive = self.parser.should_keep_alive()
        else:
            self.fields = []

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.done = self.head


class Response:
    """A provider's answer: status and headers at once, then the body as it arrives.

    `read` returns the next bytes, b"" once the body is over. `close` hands a fully
    read connection back to its pool and closes any other. `length` is the body's
    size when a Content-Length framed it, else None (chunked, or to the close).
    """

    def __init__(self, pool: Pool, connection: _Connection, until: float) -> None:
        llhttp = _llhttp()
        self._pool = pool
        self._connection: _Connection | None = connection
        self._events = events = _Events()
        self._parser = events.parser = llhttp.HttpResponseParser(events)
        self._refusals = (llhttp.HttpParserError, llhttp.HttpParserUpgrade)
        self._broken = False
        received = 0
        while not events.head:
            data = self._receive(until)
            if not data:
                raise TransportError("the connection closed before an answer")
            received += len(data)
            if events.head_size > _HEAD_LIMIT or (received > _HEAD_LIMIT and not events.head):
                raise ProtocolError("the answer's headers are too large")
        self.status_code: int = self._parser.get_status_code()
        self.headers = headers = Headers(events.fields)
        version = self._parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(f"the answer is HTTP/{version}, not HTTP/1.1")
        coding = headers.get("Content-Encoding")
        if coding is not None and coding.strip().lower() != "identity":
            raise ProtocolError(f"the answer came encoded as {coding}, which was not asked for")
        transfer = headers.get("Transfer-Encoding")
        self._chunked = transfer is not None
        if self._chunked and transfer.strip().lower() != "chunked":
            raise ProtocolError(f"the answer is framed as {transfer}; only chunked is read")
        # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 answer is faulty framing; close after it.
        self._keep_alive = events.keep_alive and not (self._chunked and version == "1.0")
        length = headers.get("Content-Length")
        self.length = int(length) if length is not None and not self._chunked else None

    def _receive(self, until: float) -> bytes:
        """Read once and hand the bytes to the parser; its refusal is a ProtocolError."""
        assert self._connection is not None
        data = self._connection.receive(until)
        if not data:
            return data
        try:
            self._parser.feed_data(data)
        except self._refusals as error:
            self._broken = True
            if not self._events.done:  # after the answer's end, it only means the connection is not kept
                if isinstance(error, self._refusals[1]):
                    raise ProtocolError("the answer switched protocols, which was not asked for") from None
                raise ProtocolError(f"the answer is not well-formed HTTP/1.1: {error}") from None
        return data

    def read(self, timeout: float) -> bytes:
        """The next bytes of the body, waiting at most `timeout` seconds for them; b"" at its end."""
        until = time.monotonic() + timeout
        events = self._events
        while True:
            if events.body:
                data = events.body[0] if len(events.body) == 1 else b"".join(events.body)
                events.body.clear()
                return data
            if events.done or self._connection is None:
                return b""
            if not self._receive(until):
                if self.length is None and not self._chunked:
                    events.done = True  # a body without a length ends where the connection does
                    self._keep_alive = False
                    return b""
                raise TransportError("the connection closed before the answer was complete")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep_alive and not self._events.done:
            self._finish(connection)
        if self._events.done and self._keep_alive and not (self._broken or self._events.stray):
            self._pool.release(connection)
        else:
            connection.close()

    def _finish(self, connection: _Connection) -> None:
        """Read the rest of the body if it is already here, without waiting.

        A stream's reader stops at its last event (`data: [DONE]`), before the
        chunked body's closing framing; taking that too keeps the connection for
        the next call. A body with more than a little left is not worth reading.
        """
        events = self._events
        left = _DRAIN_LIMIT - sum(map(len, events.body))
        try:
            for _ in range(2):  # what reads that do not wait bring, twice at most
                connection.sock.settimeout(0.0)
                data = connection.sock.recv(_RECEIVE)
                left -= len(data)
                if not data or left < 0:
                    return
                self._parser.feed_data(data)
                if events.done:
                    return
        except (OSError, *self._refusals):
            self._broken = True  # nothing more is here yet, or it is not HTTP
        finally:
            events.body.clear()


class Pool:
    """Keep-alive connections, at most `IDLE_TOTAL` idle ones across origins, shared by a process's threads."""

    def __init__(self, user_agent: str, tls: ssl.SSLContext | None = None) -> None:
        self._user_agent = user_agent
        self._tls = tls  # None: tls_context()
        self._idle: list[_Connection] = []  # oldest first
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
        until: float | None = None,
    ) -> Response:
        """Send a request and wait for its answer's status line and headers.

        `addresses`, when given, are the only ones connected to (for a host checked
        beforehand). `until`, when given, is a monotonic time by which the answer's
        head must have come, however long connecting and sending took. Raises ConnectTimeout, ReadTimeout (no answer within
        `first_byte_timeout`), ProtocolError (InvalidURL for a URL that cannot be
        sent), or TransportError.
        """
        if method == "HEAD":
            raise ValueError("an answer to HEAD has no body to read; this client does not send one")
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
            first_byte = time.monotonic() + first_byte_timeout
            return Response(self, connection, first_byte if until is None else min(first_byte, until))
        except BaseException:
            connection.close()
            raise

    def _idle_connection(self, origin: tuple[str, str, int]) -> _Connection | None:
        """The most recently idle connection to `origin` that is still usable; expired ones closed."""
        while True:
            with self._lock:
                stale = self._expired()
                connection = None
                for index in range(len(self._idle) - 1, -1, -1):
                    if self._idle[index].origin == origin:
                        connection = self._idle.pop(index)
                        break
            for old in stale:
                old.close()
            if connection is None or connection.reusable():
                return connection
            connection.close()

    def release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(connection)
            stale = self._expired()
            if len(self._idle) > IDLE_TOTAL:
                stale.append(self._idle.pop(0))
        for old in stale:
            old.close()

    def _expired(self) -> list[_Connection]:
        """Take out the idle connections past their time (the oldest come first); under the lock."""
        horizon = time.monotonic() - _IDLE_SECONDS
        count = 0
        while count < len(self._idle) and self._idle[count].idle_since < horizon:
            count += 1
        stale = self._idle[:count]
        del self._idle[:count]
        return stale


@lru_cache(maxsize=256)
def _parse(url: str) -> tuple[tuple[str, str, int], str, str]:
    """The origin, the request target (percent-encoded) and the Host header of an http(s) URL."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError as error:  # brackets that hold no address, a port that is not a number
        raise InvalidURL(f"not a URL that can be requested: {error}") from None
    if scheme not in ("http", "https") or not host:
        raise InvalidURL(f"not an http(s) URL: {url!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL(f"not a host name: {host!r}") from None
    if not set(host) <= _HOST_CHARACTERS:
        raise InvalidURL(f"not a host name: {host!r}")
    default = 443 if scheme == "https" else 80
    port = port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return (scheme, host, port), target, host_header


def _connect(
    origin: tuple[str, str, int],
    timeout: float,
    addresses: Sequence[Address] | None,
    tls: ssl.SSLContext | None,
) -> _Connection:
    """A connection to the origin: its name resolved, one of its addresses, TLS, all within `timeout`."""
    scheme, host, port = origin
    until = time.monotonic() + timeout
    try:
        sock = _connect_to(addresses or resolve(host, port, until), until)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            sock.settimeout(max(until - time.monotonic(), 0.001))
            sock = (tls or tls_context()).wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        raise ConnectTimeout(f"no connection to {host} within {timeout:g} seconds") from None
    except OSError as error:  # refused, unreachable, a name that does not resolve, a certificate refused
        raise TransportError(f"no connection to {host}: {error}") from None
    return _Connection(origin, sock)


def resolve(host: str, port: int, until: float) -> list[Address]:
    """The addresses of `host`, or TimeoutError once the monotonic time `until` passes.

    The system's resolver has no timeout of its own, so a name is looked up in a
    thread this call stops waiting for; an address literal needs no lookup.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return [(family, (host, port))]
        except (OSError, ValueError):
            pass
    found: list[list[Address] | Exception] = []

    def lookup() -> None:
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.append([(family, address) for family, *_, address in answers])
        except (OSError, ValueError) as error:  # UnicodeError (a label too long) is a ValueError
            found.append(error)

    thread = threading.Thread(target=lookup, name="resolve", daemon=True)
    thread.start()
    thread.join(max(until - time.monotonic(), 0.0))
    if not found:
        raise TimeoutError(f"{host} did not resolve in time")
    if isinstance(found[0], Exception):
        raise OSError(f"{host} does not resolve: {found[0]}")
    return found[0]


def _connect_to(addresses: Sequence[Address], until: float) -> socket.socket:
    """A connection to the first of `addresses` that accepts one, all tries within `until`."""
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
def _llhttp() -> ModuleType:
    """httptools, imported with the first answer rather than with the function (cold starts)."""
    import httptools

    return httptools


@cache
def tls_context() -> ssl.SSLContext:
    """The process's one client TLS context: certificates verified against Mozilla's roots (certifi),
    as the platform's own may be missing. Made on first use (loading the roots takes milliseconds)."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())
