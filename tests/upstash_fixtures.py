"""Fixtures for the counters' backends: a real redis-server, Upstash's REST API in front of it.

`backend` runs a test once per backend: it gives the variables that select it, and
`start_gateway(**backend, ...)` starts a gateway on it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.fakes.redis_server import RedisServer
from tests.fakes.upstash import UpstashEmulator

UPSTASH_TOKEN = "test-upstash-token"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def upstash_emulator(redis_server: RedisServer) -> Iterator[UpstashEmulator]:
    with UpstashEmulator(redis_server, UPSTASH_TOKEN) as emulator:
        yield emulator


@pytest.fixture
def upstash(upstash_emulator: UpstashEmulator) -> UpstashEmulator:
    """The emulator with an empty database and its request count at zero."""
    upstash_emulator.reset()
    return upstash_emulator


def upstash_env(url: str, token: str = UPSTASH_TOKEN, timeout: float = 10) -> dict[str, str]:
    """The variables pointing a gateway at `url`; a loaded machine's round trip is not an outage,
    so the call's time bound is generous unless a test is about it."""
    return {
        "UPSTASH_REDIS_REST_URL": url,
        "UPSTASH_REDIS_REST_TOKEN": token,
        "UPSTASH_REDIS_TIMEOUT": str(timeout),
    }


@pytest.fixture(params=["sqlite", "upstash"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The variables selecting each backend in turn: none for SQLite, Upstash's URL and token."""
    if request.param == "sqlite":
        return {}
    return upstash_env(request.getfixturevalue("upstash").url)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections and never answers, like a hung Upstash."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes handshakes; nobody ever reads
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
