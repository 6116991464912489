"""Fixtures for the media routes: a fake MapleAI and a gateway wired to both fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Gateway
from tests.fakes.mapleai import FakeMapleAI

MAPLEAI_KEY = "test-mapleai-key"
# Short, so a video job that never finishes is given up on quickly.
JOB_BUDGET = 2.0


@pytest.fixture(scope="session")
def mapleai() -> Iterator[FakeMapleAI]:
    with FakeMapleAI(MAPLEAI_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def media_gateway(start_gateway: Callable[..., Gateway], mapleai: FakeMapleAI) -> Gateway:
    """A gateway in front of both fakes, its media limits out of the way of functional tests."""
    return start_gateway(
        MAPLEAI_BASE_URL=mapleai.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        RATE_LIMIT_IMAGE_ANONYMOUS="100000",
        RATE_LIMIT_VIDEO_ANONYMOUS="100000",
        VIDEO_JOB_TIMEOUT=str(JOB_BUDGET),
        UPSTREAM_BACKOFF="0.01",
    )
