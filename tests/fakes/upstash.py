"""Upstash Redis' REST API on loopback, in front of a real `redis-server`.

Follows Upstash's documented protocol (docs: Redis > Features > REST API):

- a command as a JSON array posted to `/` (`["SET", "foo", "bar", "EX", 100]`), or in
  the path (`/set/foo/bar`, a request body appended as the last argument);
- `/pipeline`: a JSON array of commands run in order, not atomically, answered by an
  array of `{"result": ...}` / `{"error": ...}`, one per command;
- `/multi-exec`: the same run as one MULTI/EXEC transaction; a transaction Redis
  discards as a whole (a command it refuses to queue) is one `{"error": ...}`;
- `Authorization: Bearer <token>` or `?_token=`; missing or wrong is a 401;
- `{"result": ...}` with 200, `{"error": "ERR ..."}` with 400 when a command fails;
- `Upstash-Encoding: base64`: every string in a result base64-encoded, except `OK`;
- only HEAD, GET, POST and PUT; anything else is a 405.

Tests can make it misbehave (`answer_with`) or slow (`delay`, seconds before each
answer, as a distant region's round trip) and read how many requests it served.
"""

from __future__ import annotations

import json
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.redis_server import RedisServer, RespConnection, RespError
from tests.fakes.server import FakeHandler, LoopbackFake, QuietServer

# Connection-level commands: over REST each request may land on another connection.
# Streaming ones (MONITOR, SUBSCRIBE) have their own endpoints, not emulated here.
_TCP_ONLY = {"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT"}


class _Server(QuietServer):
    emulator: UpstashEmulator


class UpstashEmulator(LoopbackFake):
    server_class = _Server

    def __init__(self, redis: RedisServer, token: str) -> None:
        self.redis = redis
        self.token = token
        self.requests = 0
        self.bodies: list[bytes] = []  # every request's body, in the order they came
        self.delay = 0.0
        self.failure: tuple[int, bytes, str] | None = None
        self._idle: list[RespConnection] = []
        self._lock = threading.Lock()
        super().__init__(_Handler)
        self._server.emulator = self

    def stop(self) -> None:
        super().stop()
        for connection in self._idle:
            connection.close()

    def counts(self) -> int:
        """How many requests counted a rate-limit window (an `INCR`), of all the requests so far."""
        return sum(b'["INCR"' in body for body in self.bodies)

    @contextmanager
    def answer_with(self, status: int, body: bytes, content_type: str = "application/json") -> Iterator[None]:
        """Answer every request with this, as a broken proxy or an outage would, until the block ends."""
        self.failure = (status, body, content_type)
        try:
            yield
        finally:
            self.failure = None

    def reset(self) -> None:
        """Forget every key, the request count and any delay, for a test that starts afresh."""
        self.requests = 0
        self.bodies = []
        self.delay = 0.0
        with self.connection() as redis:
            redis.call("FLUSHALL")

    @contextmanager
    def connection(self) -> Iterator[RespConnection]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        connection = connection or self.redis.connect()
        try:
            yield connection
        except BaseException:
            connection.close()  # its state is unknown now: never reuse it
            raise
        with self._lock:
            self._idle.append(connection)

    # Protocol

    def answer(self, path: str, body: bytes, base64: bool) -> tuple[int, Any]:
        if path in ("/pipeline", "/multi-exec"):
            commands = _parse(body, batch=True)
            if commands is None:
                return 400, {"error": "ERR failed to parse command"}
            if path == "/pipeline":
                with self.connection() as redis:
                    replies = [redis.call(*command) for command in commands]
                return 200, [_entry(reply, base64) for reply in replies]
            return self._transaction(commands, base64)
        command = _parse(body, batch=False)
        if command is None:
            return 400, {"error": "ERR failed to parse command"}
        if str(command[0]).upper() in _TCP_ONLY:
            return 400, {"error": f"ERR Command is not available: '{command[0]}'"}
        with self.connection() as redis:
            reply = redis.call(*command)
        entry = _entry(reply, base64)
        return (400 if "error" in entry else 200), entry

    def _transaction(self, commands: list[list[Any]], base64: bool) -> tuple[int, Any]:
        for command in commands:
            if str(command[0]).upper() in _TCP_ONLY:
                return 400, {"error": f"ERR Command is not allowed in a transaction: '{command[0]}'"}
        with self.connection() as redis:
            redis.send("MULTI")
            for command in commands:
                redis.send(*command)
            redis.send("EXEC")
            redis.read()  # +OK for MULTI
            queued = [redis.read() for _ in commands]
            replies = redis.read()
        refused = [reply for reply in queued if isinstance(reply, RespError)]
        if refused:  # Redis discarded the whole transaction (EXECABORT)
            return 400, {"error": str(refused[0])}
        if isinstance(replies, RespError):
            return 400, {"error": str(replies)}
        return 200, [_entry(reply, base64) for reply in replies]


def _parse(body: bytes, *, batch: bool) -> Any:
    """The command (or list of commands) in a JSON body; None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    commands = data if batch else [data]
    if not isinstance(commands, list) or not commands:
        return None
    for command in commands:
        if not isinstance(command, list) or not command:
            return None
        if not all(isinstance(arg, str | int | float) and not isinstance(arg, bool) for arg in command):
            return None
    return commands if batch else commands[0]


def _entry(reply: object, base64: bool) -> dict[str, Any]:
    if isinstance(reply, RespError):
        return {"error": str(reply)}
    return {"result": _encode(reply, base64)}


def _encode(value: object, base64: bool) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, list):
        return [_encode(item, base64) for item in value]
    if isinstance(value, RespError):
        return str(value)
    if isinstance(value, str):  # a status reply
        return b64encode(value.encode()).decode() if base64 and value != "OK" else value
    assert isinstance(value, bytes)
    return b64encode(value).decode() if base64 else value.decode("utf-8", "replace")


class _Handler(FakeHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_HEAD = do_POST

    def do_DELETE(self) -> None:
        self.send_json(405, {"error": "ERR method not allowed"})

    do_PATCH = do_OPTIONS = do_DELETE

    def _serve(self) -> None:
        emulator = self.server.emulator
        body = self.read_body()
        with emulator._lock:
            emulator.requests += 1
            emulator.bodies.append(body)
        time.sleep(emulator.delay)
        if emulator.failure is not None:
            status, raw, content_type = emulator.failure
            return self.send(status, raw, content_type)
        url = urlsplit(self.path)
        query = parse_qsl(url.query)
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            token = dict(query).get("_token", "")
        if token != emulator.token:
            return self.send_json(401, {"error": "Unauthorized"})
        path = url.path.rstrip("/") or "/"
        if path not in ("/", "/pipeline", "/multi-exec"):
            # A command in the path: its segments, then the body, then query parameters.
            command: list[Any] = [unquote(segment) for segment in path.strip("/").split("/")]
            if body:
                command.append(body.decode("utf-8", "replace"))
            command += [item for pair in query if pair[0] != "_token" for item in pair]
            body = json.dumps(command).encode()
            path = "/"
        base64 = (self.headers.get("Upstash-Encoding") or "").lower() == "base64"
        try:
            status, answer = emulator.answer(path, body, base64)
        except OSError:
            status, answer = 500, {"error": "ERR database unreachable"}
        self.send_json(status, answer)
