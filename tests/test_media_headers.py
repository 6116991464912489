"""A hostile provider's media answers, through the local server over real sockets: the caller gets a
Content-Length only when it framed the body, and a Content-Type only when it is a well-formed
`type/subtype[; params]`; anything else is a 502 `upstream_malformed`, never a forged header."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import unquote

import httpx
import pytest

from tests.conftest import Gateway
from tests.fakes import files
from tests.fakes.scripted import Reply, ScriptedServer
from tests.test_bad_input import assert_envelope

IMAGE = files.png(40, 30) + b"\0" * 2000  # a PNG with padding: longer than any length a test lies about


def chunked(data: bytes, head: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + head
        + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    )


def sized(data: bytes, head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


# The prompt names the answer the provider sends.
ANSWERS = {
    "chunked-and-a-lying-length": chunked(IMAGE, b"Content-Type: image/png\r\nContent-Length: 10\r\n"),
    "chunked": chunked(IMAGE, b"Content-Type: image/png\r\n"),
    "sized": sized(IMAGE, b"Content-Type: image/png\r\n"),
    "to-the-close": b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n" + IMAGE,
    "injected-field": sized(IMAGE, b"Content-Type: image/png\nSet-Cookie: pwned=1\r\n"),
    "two-types": sized(IMAGE, b"Content-Type: image/png, text/html\r\n"),
    "markup-in-the-type": sized(IMAGE, b"Content-Type: image/png<script>\r\n"),
    "no-subtype": sized(IMAGE, b"Content-Type: image/\r\n"),
    "parameter-without-value": sized(IMAGE, b"Content-Type: image/png; charset\r\n"),
    "unterminated-quote": sized(IMAGE, b'Content-Type: image/png; name="a\r\n'),
    "with-parameters": sized(IMAGE, b'Content-Type: image/png; name="a b"; q=1\r\n'),
}


@pytest.fixture(scope="module")
def hostile() -> Iterator[ScriptedServer]:
    def reply(n: int) -> Reply:
        path = server.requests[n].split(b" ", 2)[1].decode()
        prompt = unquote(path.split("?")[0].rsplit("/", 1)[1])
        return [ANSWERS[prompt]]

    with ScriptedServer(reply, close_after_reply=True) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(start_module_gateway: Callable[..., Gateway], hostile: ScriptedServer) -> Gateway:
    return start_module_gateway(POLLINATIONS_BASE_URL=hostile.url, RATE_LIMIT_IMAGE_ANONYMOUS="100000")


def image(gateway: Gateway, prompt: str) -> httpx.Response:
    return gateway.client.post("/api/image", json={"prompt": prompt, "model": "flux"})


@pytest.mark.parametrize("prompt", ["chunked", "to-the-close"])
def test_a_body_not_framed_by_a_length_is_passed_on_without_one(gateway: Gateway, prompt: str) -> None:
    response = image(gateway, prompt)
    assert response.status_code == 200
    assert response.content == IMAGE
    assert "Content-Length" not in response.headers
    assert response.headers["Content-Type"] == "image/png"


def test_a_body_framed_by_its_length_is_passed_on_with_it(gateway: Gateway) -> None:
    response = image(gateway, "sized")
    assert response.content == IMAGE
    assert response.headers["Content-Length"] == str(len(IMAGE))


def test_a_well_formed_type_with_parameters_is_passed_on_as_sent(gateway: Gateway) -> None:
    response = image(gateway, "with-parameters")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == 'image/png; name="a b"; q=1'


@pytest.mark.parametrize(
    "prompt",
    [
        "chunked-and-a-lying-length",
        "injected-field",
        "two-types",
        "markup-in-the-type",
        "no-subtype",
        "parameter-without-value",
        "unterminated-quote",
    ],
)
def test_a_lying_length_or_a_malformed_type_is_a_malformed_upstream_error(
    gateway: Gateway, prompt: str
) -> None:
    response = image(gateway, prompt)
    assert_envelope(response, 502, "upstream_malformed")
    assert "Set-Cookie" not in response.headers
