"""The shared web layer under a real server: a bug is a 500 in the envelope, never a traceback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from wsgiref.simple_server import make_server

import httpx
import pytest

from lib.errors import UpstreamTimeout
from lib.web import Request, Response, endpoint, event_stream
from tests.function_server import QuietHandler, ThreadingServer


def broken(request: Request) -> Response:
    raise KeyError("secret internals")


def stream_then_bug(request: Request) -> Response:
    def events() -> Iterator[bytes]:
        yield b'data: {"n": 1}\n\n'
        raise RuntimeError("secret internals")

    return event_stream(events())


def stream_then_timeout(request: Request) -> Response:
    def events() -> Iterator[bytes]:
        yield b'data: {"n": 1}\n\n'
        raise UpstreamTimeout("the provider went quiet")

    return event_stream(events())


ROUTES = {
    "/broken": endpoint(GET=broken),
    "/stream-bug": endpoint(GET=stream_then_bug),
    "/stream-timeout": endpoint(GET=stream_then_timeout),
}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    def app(environ, start_response):
        return ROUTES[environ["PATH_INFO"]](environ, start_response)

    # The standard library's threaded server polls rather than select()s, so it works
    # whatever file descriptor numbers the test process has reached.
    server = make_server("127.0.0.1", 0, app, ThreadingServer, QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_bug_is_a_500_in_the_envelope_without_details(site: str) -> None:
    response = httpx.get(f"{site}/broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["X-Request-Id"].startswith("req_")
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_a_bug_mid_stream_ends_the_stream_with_an_error_event(site: str) -> None:
    response = httpx.get(f"{site}/stream-bug")
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[0] == 'data: {"n": 1}'
    assert events[-1].startswith('data: {"error":')
    assert '"code":"internal_error"' in events[-1]
    assert "secret internals" not in response.text


def test_a_gateway_error_mid_stream_keeps_its_code(site: str) -> None:
    events = [e for e in httpx.get(f"{site}/stream-timeout").text.split("\n\n") if e]
    assert '"code":"upstream_timeout"' in events[-1]
    assert len(events) == 2
