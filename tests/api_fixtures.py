"""Fixtures for the whole public surface: a gateway in front of both fakes with no limit in the way, a key for it.

The generated requests of tests/test_api_properties.py are counted here, by
operation and status, and the count is printed at the end of the run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.fakes.mapleai import FakeMapleAI
from tests.key_stores import JWT_SECRET, access_token
from tests.mapleai_fixtures import JOB_BUDGET, MAPLEAI_KEY

CASES: defaultdict[str, Counter[int]] = defaultdict(Counter)

UNLIMITED = {
    f"RATE_LIMIT_{modality}_{caller}": "1000000"
    for modality in ("CHAT", "IMAGE", "VIDEO")
    for caller in ("ANONYMOUS", "AUTHENTICATED")
} | {"RATE_LIMIT_ACCOUNT": "1000000", "RATE_LIMIT_FAILED_AUTH": "1000000"}


def assert_first_chunk_arrives_before_the_rest(
    client: httpx.Client, gate: threading.Event, **request: Any
) -> None:
    """Stream a chat whose fake provider sends `first`, then waits for `gate`: `first` must come through at once."""
    started = time.monotonic()
    with client.stream("POST", "/api/chat", **request) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = response.iter_lines()
        for line in lines:
            if (
                line.startswith("data: ")
                and json.loads(line[6:])["choices"][0]["delta"].get("content") == "first"
            ):
                break
        assert time.monotonic() - started < 5
        gate.set()
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"


def issue_key(gateway: Gateway) -> str:
    """A new user's first API key, created through POST /api/keys with an access token."""
    token = access_token(str(uuid.uuid4()))
    response = gateway.client.post("/api/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture(scope="session")
def open_gateway(start_session_gateway: Callable[..., Gateway], mapleai: FakeMapleAI) -> Gateway:
    return start_session_gateway(
        MAPLEAI_BASE_URL=mapleai.url,
        MAPLEAI_API_KEY=MAPLEAI_KEY,
        SUPABASE_JWT_SECRET=JWT_SECRET,
        VIDEO_JOB_TIMEOUT=str(JOB_BUDGET),
        UPSTREAM_BACKOFF="0.01",
        **UNLIMITED,
    )


@pytest.fixture(scope="session")
def api_key(open_gateway: Gateway) -> str:
    return issue_key(open_gateway)


@pytest.fixture(scope="session")
def account_token() -> str:
    """An access token for a user of its own, for the key routes."""
    return access_token(str(uuid.uuid4()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its counts to the process that prints the summary."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["cases"] = {operation: dict(n) for operation, n in CASES.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    for operation, statuses in getattr(node, "workeroutput", {}).get("cases", {}).items():
        CASES[operation].update({int(status): n for status, n in statuses.items()})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    total = sum(sum(statuses.values()) for statuses in CASES.values())
    terminalreporter.section(f"generated requests: {total} over {len(CASES)} operations")
    for operation, statuses in sorted(CASES.items()):
        counts = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        terminalreporter.write_line(f"{operation:<40} {sum(statuses.values()):>5}  ({counts})")
