"""A real `redis-server` on a free loopback port, and a minimal RESP2 client to talk to it.

The server is installed with `scripts/apt-install` when the machine lacks it, and runs
in a temporary directory without persistence: nothing it holds outlives the test run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class RespError(Exception):
    """An error reply (`-ERR ...`), kept verbatim."""


class RespConnection:
    """One connection speaking RESP2: commands as arrays of bulk strings, replies parsed raw.

    Simple strings come back as `str`, bulk strings as `bytes`, so a caller can tell
    Redis' status replies (`+OK`) from stored values.
    """

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._reader = self._socket.makefile("rb")

    def send(self, *args: bytes | str | int | float) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._socket.sendall(b"".join(parts))

    def read(self) -> object:
        """The next reply; an error reply is returned as a `RespError`, not raised."""
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._reader.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.read() for _ in range(size)]
        raise ConnectionError(f"not a RESP2 reply: {line!r}")

    def call(self, *args: bytes | str | int | float) -> object:
        self.send(*args)
        return self.read()

    def close(self) -> None:
        self._reader.close()
        self._socket.close()


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "apt-install"), "redis-server"], check=True)
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed and apt-get could not install it")
    return found


class RedisServer:
    def __init__(self, directory: Path, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [
                _binary(),
                *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)),
                *("--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = RespConnection(port, timeout=1)
                if connection.call("PING") == "PONG":
                    connection.close()
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = directory / "redis.log"
                raise RuntimeError(f"redis-server did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.05)

    def connect(self) -> RespConnection:
        return RespConnection(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
