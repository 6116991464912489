"""Shared fixtures: a fake Pollinations and CloudGPT's local server, both on loopback.

The gateway runs as its own process (`python -m lib.devserver`), configured only
through environment variables, exactly as a developer runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.pollinations import FakePollinations
from tests.vercel_runtime import background_build, wait_for_background_build

pytest_plugins = [
    "tests.mapleai_fixtures",
    "tests.postgres",
    "tests.key_stores",
    "tests.upstash_fixtures",
    "tests.api_fixtures",
    "tests.browser",
]

ROOT = Path(__file__).resolve().parent.parent
BUILT = "tests/test_vercel_runtime.py"  # the tests that need `vercel build`'s output


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start `vercel build` now if a selected test needs it: the tests before it run meanwhile."""
    if any(item.nodeid.startswith(BUILT) for item in session.items):
        background_build()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave no build running behind the run (a failing `-x` run may end before it is needed)."""
    wait_for_background_build()


UPSTREAM_KEY = "test-pollinations-key"
# The functions behind the router alone, as Vercel runs them: without the local server's
# start-up, which checks the settings first and ignores VERCEL.
AS_ON_VERCEL = (
    "-c",
    "from wsgiref.simple_server import make_server; from lib.devserver import Router; "
    "from tests.function_server import QuietHandler, ThreadingServer; "
    "make_server('127.0.0.1', {port}, Router(), ThreadingServer, QuietHandler).serve_forever()",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_held: list[socket.socket] = []  # bound, never listening: kept for the whole run


def refused_port() -> int:
    """A loopback port that refuses every connection for the whole run.

    A port that was merely free when asked may be taken later by another test's
    server; one bound here without listening refuses connections and can be bound
    by nobody else.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]


class Gateway:
    """A running local server and a client for it."""

    def __init__(
        self,
        env: dict[str, str],
        argv: tuple[str, ...] = ("-m", "lib.devserver", "--port", "{port}"),
        cwd: Path = ROOT,
    ) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env  # what it was started with, for a command run beside it
        # The server's log goes to a file: a pipe nobody drains would block it once full.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, *(arg.format(port=self.port) for arg in argv)],
            cwd=cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, with its workers: stop() ends them all
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(f"gateway did not start: {self.log.read().decode()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """End the server and its workers at once: a graceful stop waits for work in flight
        (a usage record to a slow store), which no test reads once it is over."""
        self.client.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.log.close()


def gateway_env(upstream: FakePollinations, data_dir: Path, **overrides: str) -> dict[str, str]:
    """A gateway's environment: this process's, without CloudGPT's variables, then the fake provider's and `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POLLINATIONS_", "MAPLEAI_", "SUPABASE_", "UPSTASH_", "RATE_LIMIT_"))
        and key not in ("VERCEL", "CLOUDGPT_DATA_DIR")
    }
    return env | {
        "POLLINATIONS_BASE_URL": upstream.url,
        "POLLINATIONS_API_KEY": UPSTREAM_KEY,
        "CLOUDGPT_DATA_DIR": str(data_dir),
        **overrides,
    }


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakePollinations]:
    with FakePollinations() as fake:
        yield fake


def _launcher(
    upstream: FakePollinations, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """Start gateways, each with its own data directory; keyword arguments add variables.

    They are stopped when the fixture that yields this ends: a run starts well over a
    hundred, and a stopped one holds neither memory nor processes.
    """
    started: list[Gateway] = []

    def start(argv: tuple[str, ...] | None = None, **overrides: str) -> Gateway:
        env = gateway_env(upstream, tmp_path_factory.mktemp("data"), **overrides)
        gateway = Gateway(env, argv) if argv else Gateway(env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def start_gateway(
    upstream: FakePollinations, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """Start gateways for one test, stopped when it ends."""
    yield from _launcher(upstream, tmp_path_factory)


@pytest.fixture(scope="module")
def start_module_gateway(
    upstream: FakePollinations, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """Start gateways shared by a module's tests, stopped when its last test ends."""
    yield from _launcher(upstream, tmp_path_factory)


@pytest.fixture(scope="session")
def start_session_gateway(
    upstream: FakePollinations, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """Start gateways shared by the whole run."""
    yield from _launcher(upstream, tmp_path_factory)


@pytest.fixture(scope="session")
def gateway(start_session_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway whose chat limit is out of the way of functional tests."""
    return start_session_gateway(
        RATE_LIMIT_CHAT_ANONYMOUS="100000", UPSTREAM_BACKOFF="0.01", UPSTREAM_RETRY_AFTER_CAP="1"
    )
