"""The local server routes like Vercel (file paths, [param] segments, rewrites, headers, static
files) and stays local: bodies over the cap refused unread, VERCEL in the environment ignored."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from wsgiref.simple_server import make_server

import httpx
import pytest

from lib.devserver import Router
from lib.keys.format import new_key
from tests.conftest import ROOT, UPSTREAM_KEY, Gateway, gateway_env
from tests.fakes import files
from tests.fakes.pollinations import FakePollinations
from tests.fakes.scripted import ScriptedServer
from tests.function_server import QuietHandler, ThreadingServer

ECHO = """
import json
from fnmatch import fnmatch
from urllib.parse import parse_qsl

def app(environ, start_response):
    body = json.dumps({"file": __file__.rsplit("/api/", 1)[1], "path": environ["PATH_INFO"],
                       "query": dict(parse_qsl(environ["QUERY_STRING"]))}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    for name in ("hello.py", "keys/index.py", "keys/[id].py", "keys/mine.py", "_private.py"):
        (tmp_path / "api" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "api" / name).write_text(ECHO)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "vercel.json").write_text(json.dumps({
        "rewrites": [
            {"source": "/v1/keys/:id", "destination": "/api/keys/:id?via=rewrite"},
            {"source": "/old/:rest*", "destination": "/api/hello"},
            {"source": "/api/keys/mine", "destination": "/api/hello"},
        ],
        "headers": [{"source": "/api/:path*", "headers": [{"key": "X-Site", "value": "test"}]}],
    }))  # fmt: skip
    server = make_server("127.0.0.1", 0, Router(tmp_path), ThreadingServer, QuietHandler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_file_path_is_the_route(site: str) -> None:
    body = httpx.get(f"{site}/api/hello?x=1").json()
    assert body == {"file": "hello.py", "path": "/api/hello", "query": {"x": "1"}}


def test_index_serves_its_folder_and_brackets_become_query_parameters(site: str) -> None:
    assert httpx.get(f"{site}/api/keys").json()["file"] == "keys/index.py"
    body = httpx.delete(f"{site}/api/keys/key_abc").json()
    assert body["file"] == "keys/[id].py"
    assert body["query"] == {"id": "key_abc"}


def test_a_files_own_path_wins_over_a_bracketed_one(site: str) -> None:
    assert httpx.get(f"{site}/api/keys/mine").json()["file"] == "keys/mine.py"
    assert httpx.get(f"{site}/api/keys/mine2").json()["file"] == "keys/[id].py"


def test_a_file_wins_over_a_rewrite_of_its_path(site: str) -> None:
    assert httpx.get(f"{site}/api/keys/mine").json()["file"] == "keys/mine.py"


def test_a_final_newline_is_part_of_the_path(site: str) -> None:
    body = httpx.get(f"{site}/api/keys/%0A").json()
    assert (body["file"], body["query"]) == ("keys/[id].py", {"id": "\n"})
    assert httpx.get(f"{site}/api/hello%0A").status_code == 404


def test_rewrites_and_headers_from_vercel_json_apply(site: str) -> None:
    response = httpx.get(f"{site}/v1/keys/key_9?extra=1")
    # Like Vercel, a rewritten request keeps its path; the rewrite's parameters join the query.
    assert response.json() == {
        "file": "keys/[id].py",
        "path": "/v1/keys/key_9",
        "query": {"extra": "1", "via": "rewrite", "id": "key_9"},
    }
    assert httpx.get(f"{site}/old/a/b/c").json()["query"] == {"rest": "a/b/c"}
    # A "?" or "&" in a rewritten segment stays in it.
    assert httpx.get(f"{site}/v1/keys/key%3Fa%26b").json()["query"] == {"via": "rewrite", "id": "key?a&b"}
    # Like Vercel, header rules match the path the client asked for, before rewrites.
    assert "X-Site" not in response.headers
    assert httpx.get(f"{site}/api/hello").headers["X-Site"] == "test"


def test_static_files_underscored_modules_and_traversal(site: str) -> None:
    assert httpx.get(f"{site}/").text == "<h1>home</h1>"
    assert httpx.get(f"{site}/api/_private").status_code == 404
    assert httpx.get(f"{site}/../vercel.json").status_code == 404
    assert httpx.get(f"{site}/api/nope").json()["error"]["code"] == "route_not_found"


def test_vercel_json_gives_every_function_a_time_limit() -> None:
    root = Path(__file__).resolve().parent.parent
    functions = json.loads((root / "vercel.json").read_text())["functions"]
    for file in (root / "api").rglob("*.py"):
        name = str(file.relative_to(root))
        limits = [config["maxDuration"] for glob, config in functions.items() if fnmatch(name, glob)]
        assert len(limits) == 1, name
        # A provider may take minutes; everything else answers from the catalog or the key store.
        expected = (
            300
            if name in ("api/chat.py", "api/image.py", "api/images/generations.py", "api/video.py")
            else 10
        )
        assert limits[0] == expected, name


def test_a_body_declared_over_the_cap_is_a_413_before_it_is_sent(gateway: Gateway) -> None:
    # A gigabyte is announced and 64 KiB sent: the answer can only come if nothing waits for the rest.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n" + b"x" * 65536
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert time.monotonic() - started < 4
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_a_413_closes_its_connection_so_the_client_never_reuses_it(gateway: Gateway) -> None:
    # The refused body is left unread, so the connection can carry no further request:
    # the answer says so, and a keep-alive client opens a new one for its next request.
    def too_much() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(10):
            refused = client.post(
                "/api/chat", content=too_much(), headers={"Content-Type": "application/json"}
            )
            assert refused.status_code == 413 and refused.headers["Connection"] == "close"
            assert client.get("/api/models/chat").status_code == 200


def test_the_local_server_stays_local_when_vercel_is_set(start_gateway) -> None:
    # `vercel env pull` writes VERCEL="1" into .env.local; on Vercel it switches the embedded stores off.
    gateway = start_gateway(VERCEL="1")
    chat = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
    response = gateway.client.post("/api/chat", json=chat)
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Remaining"] == "9"  # counted by the embedded store
    # A well-formed key nobody issued is looked up in the embedded key store: a 401, not a 503.
    unknown = {"Authorization": f"Bearer {new_key()}"}
    assert gateway.client.post("/api/chat", json=chat, headers=unknown).status_code == 401


def server_log(gateway: Gateway, until: bytes, timeout: float = 10) -> str:
    """The gateway's output so far, once it holds `until` (printed lines come a moment after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        gateway.log.seek(0)
        output = gateway.log.read()
        if until in output or time.monotonic() > deadline:
            return output.decode(errors="replace")
        time.sleep(0.02)


def test_the_access_log_prints_control_characters_in_a_path_escaped(gateway: Gateway) -> None:
    # A decoded %0a would start a forged line; %1b an escape sequence; U+202E turns text around.
    forged = "/x%0aDashboard%20sign-in%20(one%20use):%20http://evil.example/%1b[2J%e2%80%ae"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(f"GET {forged} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    output = server_log(gateway, b"GET /x")
    assert "GET /x\\x0aDashboard sign-in (one use): http://evil.example/\\x1b[2J\\u202e 404 " in output
    assert "\nDashboard sign-in (one use): http://evil" not in output
    assert "\x1b" not in output


def test_a_second_server_on_a_taken_port_refuses_to_start_naming_the_port(gateway: Gateway) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lib.devserver", "--port", str(gateway.port), "--workers", "1"],
        cwd=ROOT,
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"Port {gateway.port} on 127.0.0.1 is taken" in done.stderr
    assert "serving on" not in done.stdout
    # The first server still answers every request, none of them lost to a second one.
    assert all(gateway.client.get("/api/models/chat").status_code == 200 for _ in range(6))


def test_make_dev_reads_a_dotenv_file_and_the_environment_wins(
    upstream: FakePollinations, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "# what an operator keeps beside the project\n"
        "RATE_LIMIT_CHAT_ANONYMOUS=7\n"
        'MAPLEAI_API_KEY="maple key from .env"\n'
        "POLLINATIONS_API_KEY=not-the-one-in-the-environment\n"
    )
    env = gateway_env(upstream, tmp_path / "data", PYTHONPATH=str(ROOT))
    gateway = Gateway(env, cwd=tmp_path)  # `make dev` in the folder holding the .env
    try:
        assert gateway.client.get("/api/config").json()["limits"]["chat"]["anonymous"] == 7
        assert gateway.client.get("/api/health").json()["providers"]["mapleai"] == {"apiKey": True}
        chat = {"model": "openai", "messages": [{"role": "user", "content": "dotenv"}]}
        assert gateway.client.post("/api/chat", json=chat).status_code == 200
        assert upstream.received("dotenv").headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    "flags", [(), ("--no-body-timeout",)], ids=["bodies-read-by-the-loop", "no-body-timeout"]
)
def test_a_chunked_answer_cut_off_midway_ends_without_its_terminator(
    start_gateway: Callable[..., Gateway], flags: tuple[str, ...]
) -> None:
    # The provider sends an image in chunks, without a Content-Length, and drops the connection
    # midway: the function raises while the answer is streaming. As on Vercel, the caller must
    # see a connection closed before the chunked body's last (empty) chunk, never a whole file.
    first = files.png(4, 3) + b"x" * 5000
    reply = [
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(first), first),
        0.2,
        b"%x\r\n%s" % (1000, b"y" * 400),
    ]
    with ScriptedServer(lambda n: reply, close_after_reply=True) as provider:
        gateway = start_gateway(
            ("-m", "lib.devserver", "--port", "{port}", *flags),
            POLLINATIONS_BASE_URL=provider.url,
            UPSTREAM_RETRIES="0",
        )
        body = b'{"prompt": "a cat", "model": "flux"}'
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes: a TimeoutError fails the test
                answer += chunk
        head, _, chunked = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        assert first in chunked  # what the provider sent was passed on as it came
        assert not chunked.endswith(b"0\r\n\r\n")
        with pytest.raises(httpx.RemoteProtocolError):  # what a client makes of it
            gateway.client.post("/api/image", content=body, headers={"Content-Type": "application/json"})


def test_clients_stalled_in_their_headers_hold_up_no_one_and_are_let_go(
    start_gateway: Callable[..., Gateway],
) -> None:
    # One worker with 8 threads, and 24 clients that stop midway through their headers.
    gateway = start_gateway(
        ("-m", "lib.devserver", "--port", "{port}", "--workers", "1", "--threads", "8"),
        CLOUDGPT_HEADER_TIMEOUT="4",
    )
    stalled = [socket.create_connection(("127.0.0.1", gateway.port), timeout=10) for _ in range(24)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            assert client.get("/api/models/chat").status_code == 200
            body = {"model": "openai", "messages": [{"role": "user", "content": "not stalled"}]}
            assert client.post("/api/chat", json=body).status_code == 200
        for sock in stalled:  # answered while every stalled client was still connected
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
            sock.settimeout(10)
        for sock in stalled:  # each is let go once CLOUDGPT_HEADER_TIMEOUT is over
            while sock.recv(65536):  # a TimeoutError here fails the test
                pass
    finally:
        for sock in stalled:
            sock.close()


def test_clients_stalled_in_their_bodies_hold_up_no_one_and_are_answered_408(
    start_gateway: Callable[..., Gateway],
) -> None:
    # One worker with 8 threads, and 40 clients that stop midway through their bodies, half of
    # them with a length and half chunked: bodies are read by the event loop, not by threads.
    gateway = start_gateway(
        ("-m", "lib.devserver", "--port", "{port}", "--workers", "1", "--threads", "8"),
        CLOUDGPT_BODY_TIMEOUT="4",
        RATE_LIMIT_CHAT_ANONYMOUS="100000",
    )
    head = b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    stalled = [socket.create_connection(("127.0.0.1", gateway.port), timeout=10) for _ in range(40)]
    try:
        for n, sock in enumerate(stalled):
            if n % 2:
                sock.sendall(head + b'Content-Length: 100\r\n\r\n{"mo')
            else:
                sock.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n4\r\n{"mo\r\n')
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            body = {"model": "openai", "messages": [{"role": "user", "content": "not stalled"}]}
            assert client.post("/api/chat", json=body).status_code == 200
        for sock in stalled:  # answered while every stalled client was still waiting
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
            sock.settimeout(10)
        for sock in stalled:  # each is answered once CLOUDGPT_BODY_TIMEOUT is over, and let go
            answer = b""
            while chunk := sock.recv(65536):  # a TimeoutError here fails the test
                answer += chunk
            head_lines, _, error = answer.partition(b"\r\n\r\n")
            assert head_lines.startswith(b"HTTP/1.1 408") and b"connection: close" in head_lines.lower()
            assert json.loads(error)["error"]["code"] == "request_timeout"
    finally:
        for sock in stalled:
            sock.close()
