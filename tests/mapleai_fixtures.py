"""Fixtures for MapleAI: the fake of its media API, the fault-injecting fake of its chat API, gateways on each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.fakes.faults import FaultyUpstream
from tests.fakes.mapleai import FakeMapleAI

MAPLEAI_KEY = "test-mapleai-key"
# Short, so a video job that never finishes is given up on quickly.
JOB_BUDGET = 2.0
# Short enough to keep the suite fast, long enough for a loaded 2-core machine.
FAST_TIMEOUTS = {
    "UPSTREAM_CONNECT_TIMEOUT": "1",
    "UPSTREAM_FIRST_BYTE_TIMEOUT": "1",
    "UPSTREAM_READ_TIMEOUT": "0.5",
    "UPSTREAM_BACKOFF": "0.05",
    "UPSTREAM_RETRY_AFTER_CAP": "1",
    "STREAM_KEEPALIVE_INTERVAL": "0.2",
}


@pytest.fixture(scope="session")
def mapleai() -> Iterator[FakeMapleAI]:
    with FakeMapleAI(MAPLEAI_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def media_gateway(start_session_gateway: Callable[..., Gateway], mapleai: FakeMapleAI) -> Gateway:
    """A gateway in front of both fakes, its media limits out of the way of functional tests."""
    return start_session_gateway(
        MAPLEAI_BASE_URL=mapleai.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        RATE_LIMIT_IMAGE_ANONYMOUS="100000",
        RATE_LIMIT_VIDEO_ANONYMOUS="100000",
        VIDEO_JOB_TIMEOUT=str(JOB_BUDGET),
        UPSTREAM_BACKOFF="0.01",
    )


@pytest.fixture(scope="session")
def faults() -> Iterator[FaultyUpstream]:
    with FaultyUpstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def resilient(start_session_gateway: Callable[..., Any], faults: FaultyUpstream) -> Any:
    """A gateway whose MapleAI is the fault-injecting fake, with short timeouts and backoff."""
    return start_session_gateway(
        MAPLEAI_BASE_URL=faults.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        RATE_LIMIT_CHAT_ANONYMOUS="100000",
        **FAST_TIMEOUTS,
    )
