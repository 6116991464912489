"""The provider transport on real sockets: framing read exactly, connections kept or dropped rightly,
and every malformed or cut answer refused as a gateway error, never a hang or a 500."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lib import transport
from lib.catalog import resolve
from lib.errors import UpstreamError
from lib.providers.openai_compatible import chat_completion
from lib.schemas import ChatRequest
from lib.upstream import Deadline, open_response, read_body
from tests.fakes.scripted import Blackhole, Reply, ScriptedServer

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


def request(pool: transport.Pool, url: str, **options: object) -> transport.Response:
    timeouts = {"connect_timeout": 2.0, "write_timeout": 2.0, "first_byte_timeout": 2.0}
    return pool.request(
        "POST", url, headers={"Content-Type": "application/json"}, body=b"{}", **timeouts | options
    )


def read_all(response: transport.Response) -> bytes:
    body = b""
    while chunk := response.read(2.0):
        body += chunk
    response.close()
    return body


def connections_used(reply: Reply, calls: int, body: bytes) -> int:
    """How many connections `calls` calls took, each answered with `reply` and read whole as `body`."""
    with ScriptedServer(lambda n: reply) as server:
        pool = transport.Pool("test")
        for _ in range(calls):
            assert read_all(request(pool, server.url)) == body
        return server.connections


def fetched(reply: Reply) -> bytes:
    """The body read through lib.upstream (which maps every failure) from a server sending `reply`."""
    with ScriptedServer(lambda n: reply) as server:
        response = open_response("provider", "GET", server.url, api_key=None, retries=0)
        return read_body("provider", response, Deadline.start(5))


def test_a_chunked_answer_split_at_every_byte_is_read_whole_and_its_connection_reused() -> None:
    byte_by_byte: Reply = [CHUNKED[:60], *(CHUNKED[i : i + 1] for i in range(60, len(CHUNKED)))]
    assert connections_used(byte_by_byte, 2, b"hello world") == 1


def test_an_answer_that_arrives_in_one_piece_keeps_its_connection() -> None:
    assert connections_used([OK], 3, b'{"ok":true}') == 1


def test_a_stream_closed_after_its_last_event_keeps_its_connection() -> None:
    stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\ndata: [DONE]\n\n\r\n"
    with ScriptedServer(lambda n: [stream, 0.01, b"0\r\n\r\n"]) as server:
        pool = transport.Pool("test")
        for _ in range(2):
            response = request(pool, server.url)
            assert response.read(2.0) == b"data: [DONE]\n\n"  # a reader stops here, framing unread
            time.sleep(0.05)
            response.close()
        assert server.connections == 1


def test_a_response_closed_with_its_body_still_coming_closes_its_connection() -> None:
    slow: Reply = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst", 0.3, b"later"]
    with ScriptedServer(lambda n: slow) as server:
        pool = transport.Pool("test")
        for _ in range(2):
            response = request(pool, server.url)
            assert response.read(2.0) == b"first"
            response.close()
        assert server.connections == 2


def test_a_connection_the_provider_closed_while_idle_is_not_reused() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        pool = transport.Pool("test")
        assert read_all(request(pool, server.url)) == b'{"ok":true}'
        server.close_idle_connections()
        time.sleep(0.05)
        assert read_all(request(pool, server.url)) == b'{"ok":true}'
        assert server.connections == 2


def test_a_connection_closed_by_the_answer_is_not_reused() -> None:
    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    with ScriptedServer(lambda n: [closing], close_after_reply=True) as server:
        pool = transport.Pool("test")
        for _ in range(2):
            assert read_all(request(pool, server.url)) == b'{"ok":true}'
        assert server.connections == 2


def test_a_body_without_a_length_ends_where_the_connection_does() -> None:
    reply: Reply = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst ", 0.05, b"second"]
    with ScriptedServer(lambda n: reply, close_after_reply=True) as server:
        assert read_all(request(transport.Pool("test"), server.url)) == b"first second"


def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    with ScriptedServer(lambda n: [early_hints, OK]) as server:
        response = request(transport.Pool("test"), server.url)
        assert response.status_code == 200
        assert response.headers.get("content-type") == "application/json"
        assert read_all(response) == b'{"ok":true}'


def test_a_read_that_times_out_can_be_taken_up_again() -> None:
    reply: Reply = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfir", 0.4, b"st\r\n0\r\n\r\n"]
    with ScriptedServer(lambda n: reply) as server:
        response = request(transport.Pool("test"), server.url)
        body = response.read(2.0)
        with pytest.raises(transport.ReadTimeout):
            response.read(0.05)
        assert body + read_all(response) == b"first"


def test_the_request_goes_out_as_one_http11_message() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        response = transport.Pool("CloudGPT").request(
            "POST", f"{server.url}/v1/chat?x=1", headers={"Authorization": "Bearer k"}, body=b'{"a":1}',
            connect_timeout=2, write_timeout=2, first_byte_timeout=2,
        )  # fmt: skip
        read_all(response)
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /v1/chat?x=1 HTTP/1.1"
        assert f"Host: 127.0.0.1:{server.port}" in lines
        assert {"User-Agent: CloudGPT", "Authorization: Bearer k", "Content-Length: 7"} <= set(lines)
        assert "Accept-Encoding: identity" in lines and body == b'{"a":1}'


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rb", "a\0b"])
def test_a_header_value_that_would_start_another_field_is_refused_before_sending(value: str) -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        with pytest.raises(ValueError, match="line break or NUL"):
            transport.Pool("test").request(
                "GET", server.url, headers={"Authorization": value},
                connect_timeout=2, write_timeout=2, first_byte_timeout=2,
            )  # fmt: skip
        time.sleep(0.05)
        assert server.connections == 0


def test_pinned_addresses_are_connected_to_without_resolving_the_name() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        # .invalid never resolves (RFC 6761): only the pinned address can have been used.
        response = transport.Pool("test").request(
            "GET", f"http://media.example.invalid:{server.port}/file.png", headers={},
            connect_timeout=2, write_timeout=2, first_byte_timeout=2,
            addresses=[(socket.AF_INET, ("127.0.0.1", server.port))],
        )  # fmt: skip
        assert read_all(response) == b'{"ok":true}'
        assert f"Host: media.example.invalid:{server.port}".encode() in server.requests[0]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], id="not-http"),
        pytest.param([b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n"], id="status-not-a-number"),
        pytest.param([b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"], id="field-without-colon"),
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok"], id="two-lengths"),
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], id="negative-length"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"], id="gzip"
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], id="chunk-size-not-hex"
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n"],
            id="chunk-size-0x",
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n"],
            id="chunk-longer-than-its-size",
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 8192], id="endless-size-line"
        ),
        pytest.param([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"], id="headers-past-64k"),
    ],
)
def test_an_answer_that_is_not_well_formed_http_is_a_malformed_upstream_error(reply: Reply) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamError) as refused:
        fetched(reply)
    assert refused.value.code == "upstream_malformed"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"], id="short-by-length"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nonly this"], id="short-chunked"
        ),
    ],
)
def test_an_answer_cut_off_mid_body_is_an_upstream_error_at_once(reply: Reply) -> None:
    with ScriptedServer(lambda n: reply, close_after_reply=True) as server:
        started = time.monotonic()
        response = open_response("provider", "GET", server.url, api_key=None, retries=0)
        with pytest.raises(UpstreamError) as cut:
            read_body("provider", response, Deadline.start(5))
    assert cut.value.code == "upstream_stream_cut"
    assert time.monotonic() - started < 3


def test_a_connection_dropped_before_any_answer_is_unreachable_not_malformed() -> None:
    with ScriptedServer(lambda n: [], close_after_reply=True) as server:
        with pytest.raises(UpstreamError) as dropped:
            open_response("provider", "GET", server.url, api_key=None, retries=0)
        assert dropped.value.code == "upstream_unreachable"


@pytest.mark.parametrize(
    ("answer", "passed_on"),
    [
        (b'{"choices": [],  "usage": null}', b'{"choices": [],  "usage": null}'),  # the provider's bytes
        (b'\xef\xbb\xbf{"choices": []}', b'{"choices":[]}'),  # JSON with a byte-order mark: encoded again
        (b'  \n{"choices": []}', b'{"choices":[]}'),
    ],
)
def test_a_chat_completion_is_passed_on_as_sent_only_when_it_is_plain_utf8_json(
    answer: bytes, passed_on: bytes
) -> None:
    sized = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(answer)
    body = ChatRequest.model_validate({"model": "openai", "messages": [{"role": "user", "content": "hi"}]})
    with ScriptedServer(lambda n: [sized + answer]) as server:
        response = chat_completion(
            "fake", server.url, None, resolve("chat", "openai"), body, Deadline.start(5)
        )
    assert b"".join(response.body) == passed_on


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CloudGPT test provider")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def tls_server(certificate: tuple[Path, Path], replies: Callable[[int], Reply]) -> ScriptedServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return ScriptedServer(replies, tls=context)


def test_over_tls_a_read_that_times_out_is_taken_up_again_and_the_connection_kept(
    certificate: tuple[Path, Path],
) -> None:
    reply: Reply = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfir", 0.3, b"st\r\n0\r\n\r\n"]
    with tls_server(certificate, lambda n: reply) as server:
        pool = transport.Pool("test", tls=ssl.create_default_context(cafile=certificate[0]))
        for _ in range(2):
            response = request(pool, server.url)
            body = response.read(2.0)
            with pytest.raises(transport.ReadTimeout):
                response.read(0.05)
            assert body + read_all(response) == b"first"
        assert server.connections == 1


def test_a_provider_whose_certificate_does_not_verify_is_never_sent_the_request(
    certificate: tuple[Path, Path],
) -> None:
    with tls_server(certificate, lambda n: [OK]) as server:
        with pytest.raises(UpstreamError) as refused:
            open_response("provider", "POST", server.url, api_key="secret", json_body={}, retries=0)
        assert refused.value.code == "upstream_unreachable"
        assert server.requests == []


# The defects a review proved against the hand-written parser, each on the scripted server.


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Whether `condition` holds within `seconds` (a peer's close is seen by the other side a little later)."""
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n"
                b"bb8\r\n" + b"x" * 3000 + b"\r\n0\r\n\r\n"
            ],
            id="chunked-and-a-length",
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n"],
            id="gzip-then-chunked",
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nraw"], id="a-coding-that-is-not-chunked"
        ),
        pytest.param(
            [
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\nSet-Cookie: pwned=1\r\nContent-Length: 2\r\n\r\nok"
            ],
            id="bare-lf-in-a-value",
        ),
        pytest.param(
            [
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\rSet-Cookie: pwned=1\r\nContent-Length: 2\r\n\r\nok"
            ],
            id="bare-cr-in-a-value",
        ),
        pytest.param([b"HTTP/1.1 2000K\r\nContent-Length: 2\r\n\r\nok"], id="four-digit-status"),
        pytest.param([b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], id="not-http1"),
        pytest.param(
            [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nok"],
            id="switching-protocols-unasked",
        ),
    ],
)
def test_an_answer_whose_framing_or_fields_a_conformant_parser_refuses_is_malformed(reply: Reply) -> None:
    with pytest.raises(UpstreamError) as refused:
        fetched(reply)
    assert refused.value.code == "upstream_malformed"


def test_a_switching_protocols_answer_never_puts_its_connection_back() -> None:
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with ScriptedServer(lambda n: [switching] if n == 0 else [OK]) as server:
        pool = transport.Pool("test")
        with pytest.raises(transport.ProtocolError):
            request(pool, server.url)
        assert read_all(request(pool, server.url)) == b'{"ok":true}'
        assert server.connections == 2


def test_an_http10_answer_framed_by_chunks_is_read_but_its_connection_not_kept() -> None:
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing; close after it.
    old = (
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    assert connections_used([old], 2, b"ok") == 2


def test_a_path_with_spaces_and_non_ascii_letters_goes_out_percent_encoded() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        response = open_response(
            "provider", "GET", f"{server.url}/files/ünï 图.png?name=a b&x=ü", api_key=None, retries=0
        )
        read_body("provider", response, Deadline.start(5))
        request_line = server.requests[0].split(b"\r\n", 1)[0]
        assert request_line == b"GET /files/%C3%BCn%C3%AF%20%E5%9B%BE.png?name=a%20b&x=%C3%BC HTTP/1.1"


def test_a_path_already_percent_encoded_is_sent_as_it_is() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        response = open_response("provider", "GET", f"{server.url}/a%20b/%2E?q=%26", api_key=None, retries=0)
        read_body("provider", response, Deadline.start(5))
        assert server.requests[0].startswith(b"GET /a%20b/%2E?q=%26 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "url",
    ["http://exa mple.example/x", "http://[::1/x", "http://host.example:port/x", "ftp://host.example/x"],
)
def test_a_url_that_cannot_be_sent_is_a_malformed_upstream_error(url: str) -> None:
    with pytest.raises(UpstreamError) as refused:
        open_response("provider", "GET", url, api_key=None, retries=0)
    assert refused.value.code == "upstream_malformed"


def test_the_connect_timeout_bounds_every_address_of_a_name_together(monkeypatch: pytest.MonkeyPatch) -> None:
    with Blackhole() as a, Blackhole() as b, Blackhole() as c:
        # The name resolves to three addresses that never answer (DNS is the one thing emulated here).
        found = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", hole.address) for hole in (a, b, c)]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: found)
        started = time.monotonic()
        with pytest.raises(transport.ConnectTimeout):
            request(transport.Pool("test"), "http://three.example.invalid/", connect_timeout=0.5)
        assert time.monotonic() - started < 1.2  # one timeout, not three (1.5 s)


def test_a_name_that_resolves_slowly_is_bounded_by_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve = socket.getaddrinfo

    def slow_resolver(*args: object, **kwargs: object) -> object:
        time.sleep(3)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    started = time.monotonic()
    with pytest.raises(transport.ConnectTimeout):
        request(transport.Pool("test"), "http://slow.example.invalid/", connect_timeout=0.3)
    assert time.monotonic() - started < 1.5


def pinned_get(pool: transport.Pool, server: ScriptedServer, host: str) -> bytes:
    """A GET to `host` (its own origin) connected to the scripted server."""
    response = pool.request(
        "GET", f"http://{host}:{server.port}/", headers={},
        connect_timeout=2, write_timeout=2, first_byte_timeout=2,
        addresses=[(socket.AF_INET, ("127.0.0.1", server.port))],
    )  # fmt: skip
    return read_all(response)


def test_idle_connections_are_capped_across_all_origins() -> None:
    with ScriptedServer(lambda n: [OK]) as server:
        pool = transport.Pool("test")
        for i in range(40):
            assert pinned_get(pool, server, f"origin{i}.example.invalid") == b'{"ok":true}'
        assert wait_until(lambda: server.open_connections <= transport.IDLE_TOTAL)
        assert transport.IDLE_TOTAL < 40


def test_an_idle_connection_past_its_time_is_closed_by_the_next_call_to_any_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport, "_IDLE_SECONDS", 0.1)
    with ScriptedServer(lambda n: [OK]) as server:
        pool = transport.Pool("test")
        pinned_get(pool, server, "first.example.invalid")
        time.sleep(0.2)
        pinned_get(pool, server, "second.example.invalid")
        assert wait_until(lambda: server.open_connections == 1)
