"""POST /api/image end to end: local server -> gateway -> fake Pollinations or MapleAI, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes import files
from tests.fakes.mapleai import FakeMapleAI
from tests.fakes.pollinations import FakePollinations
from tests.mapleai_fixtures import MAPLEAI_KEY
from tests.test_bad_input import assert_envelope

TWELVE_MIB = 12 * 1024 * 1024


def image(gateway: Gateway, prompt: str, model: str = "flux", **fields: object) -> httpx.Response:
    return gateway.client.post("/api/image", json={"prompt": prompt, "model": model, **fields})


def peak_rss_kib(gateway: Gateway) -> int:
    """The gateway process's peak resident memory so far (Linux's VmHWM)."""
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def received(response: httpx.Response) -> tuple[int, str]:
    """The size and SHA-256 of a streamed body, read without holding it."""
    sha, size = hashlib.sha256(), 0
    for chunk in response.iter_raw():
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def curl(gateway: Gateway, route: str, body: str, out: Path) -> None:
    """The spec's curl example: POST a JSON body, write the answer to a file, fail on an error status."""
    subprocess.run(
        [
            "curl", "-sS", "-f", "-X", "POST", f"{gateway.url}{route}",
            "-H", "Content-Type: application/json", "-d", body, "--output", str(out),
        ],
        check=True, timeout=30,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("model", "image"), [("flux", files.png(4, 3)), ("mapleai-dalle", files.png(2, 2))])
def test_spec_curl_example_writes_the_image_to_a_file(
    media_gateway: Gateway, tmp_path: Path, model: str, image: bytes
) -> None:
    out = tmp_path / "image.png"
    body = f'{{"prompt": "A futuristic city at night", "model": "{model}", "width": 1024, "height": 1024}}'
    curl(media_gateway, "/api/image", body, out)
    assert out.read_bytes() == image


def test_pollinations_gets_the_prompt_in_its_path_and_the_server_credential(
    media_gateway: Gateway, upstream: FakePollinations
) -> None:
    image(media_gateway, "A futuristic city at night", width=1024, height=1024)
    sent, query = upstream.received_media("A futuristic city at night")
    assert sent.path.startswith("/image/A%20futuristic%20city%20at%20night?")
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert query == {"model": "flux", "width": "1024", "height": "1024", "nologo": "true"}


@pytest.mark.parametrize("prompt", [".", ".."])
def test_a_prompt_that_looks_like_a_dot_segment_reaches_pollinations_whole(
    media_gateway: Gateway, upstream: FakePollinations, prompt: str
) -> None:
    assert image(media_gateway, prompt).status_code == 200
    sent, _ = upstream.received_media(prompt)
    assert sent.path.startswith("/image/%2E")


def test_pollinations_image_carries_type_length_limits_and_provider(
    media_gateway: Gateway, upstream: FakePollinations
) -> None:
    response = image(media_gateway, "a red fox / in snow?", model="turbo", width=512, height=768, seed=42)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Length"] == str(len(files.png(4, 3)))
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    assert response.headers["X-RateLimit-Remaining"].isdigit()
    assert response.content == files.png(4, 3)
    sent, query = upstream.received_media("a red fox / in snow?")
    assert sent.path.startswith("/image/" + quote("a red fox / in snow?", safe="") + "?")
    assert query == {"model": "turbo", "width": "512", "height": "768", "seed": "42", "nologo": "true"}


@pytest.mark.parametrize("verb", ["big", "chunked"])
def test_twelve_mib_image_passes_through_intact(media_gateway: Gateway, verb: str) -> None:
    with media_gateway.client.stream(
        "POST", "/api/image", json={"prompt": f"{verb}:{TWELVE_MIB}", "model": "flux"}
    ) as response:
        assert response.status_code == 200
        assert response.headers.get("Content-Length") == (str(TWELVE_MIB) if verb == "big" else None)
        assert received(response) == (TWELVE_MIB, files.digest(TWELVE_MIB))


def test_function_memory_stays_flat_passing_twelve_mib_through(start_gateway) -> None:
    # The function alone, under a server that buffers nothing (see tests/function_server.py).
    function = start_gateway(("-m", "tests.function_server", "api/image.py", "--port", "{port}"))
    body = {"prompt": f"big:{1024 * 1024}", "model": "flux"}
    assert function.client.post("/api/image", json=body).status_code == 200  # warm: imports, pools
    before = peak_rss_kib(function)
    with function.client.stream(
        "POST", "/api/image", json={**body, "prompt": f"big:{TWELVE_MIB}"}
    ) as response:
        assert received(response) == (TWELVE_MIB, files.digest(TWELVE_MIB))
    grown = peak_rss_kib(function) - before
    assert grown < 2 * 1024, f"the function's peak memory grew by {grown} KiB passing 12 MiB through"


def test_first_bytes_reach_the_caller_before_the_provider_finishes(
    media_gateway: Gateway, upstream: FakePollinations
) -> None:
    # The fake sends 64 KiB, then holds the rest until the gate opens (or 10 s pass):
    # those bytes can only arrive early if nothing on the way holds them back.
    gate = upstream.gate("media-incremental")
    started = time.monotonic()
    body = {"prompt": "gate:media-incremental", "model": "flux"}
    with media_gateway.client.stream("POST", "/api/image", json=body) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        early = time.monotonic() - started
        gate.set()
        rest = b"".join(chunks)
    assert early < 5, f"the first bytes took {early:.1f} s: the gateway held them back"
    assert first + rest == b"".join(files.blocks(1024 * 1024))


def test_file_cut_off_midway_never_looks_complete(media_gateway: Gateway) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        image(media_gateway, f"cut:{TWELVE_MIB}")


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("json", 502, "upstream_malformed"),
        ("html", 502, "upstream_malformed"),
        ("status:400", 400, "upstream_bad_request"),
        ("status:401", 502, "upstream_auth_failed"),
        ("status:402", 503, "upstream_out_of_credit"),
        ("status:500", 502, "upstream_error"),
    ],
)
def test_pollinations_answer_that_is_not_an_image_is_a_gateway_error(
    media_gateway: Gateway, prompt: str, status: int, code: str
) -> None:
    response = image(media_gateway, prompt)
    assert_envelope(response, status, code)
    assert UPSTREAM_KEY not in response.text
    assert response.headers["X-RateLimit-Remaining"].isdigit()


def test_mapleai_base64_image_is_decoded_into_bytes(media_gateway: Gateway, mapleai: FakeMapleAI) -> None:
    response = image(media_gateway, "a lighthouse", model="mapleai-dalle", width=1024, height=768, seed=1)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    assert response.content == files.png(2, 2)
    sent = [r for r in mapleai.received("/v1/images/generations") if r.body["prompt"] == "a lighthouse"]
    assert sent[-1].headers["Authorization"] == f"Bearer {MAPLEAI_KEY}"
    assert sent[-1].body == {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1024x768"}


def test_mapleai_image_link_is_fetched_and_streamed(media_gateway: Gateway, mapleai: FakeMapleAI) -> None:
    response = image(media_gateway, "url", model="mapleai-flux")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content == files.png(3, 3)
    big = image(media_gateway, f"urlbig:{TWELVE_MIB}", model="mapleai-flux")
    assert big.headers["Content-Length"] == str(TWELVE_MIB)
    assert hashlib.sha256(big.content).hexdigest() == files.digest(TWELVE_MIB)


def test_mapleai_link_to_another_host_over_http_is_not_fetched(
    media_gateway: Gateway, mapleai: FakeMapleAI
) -> None:
    before = len(mapleai.received("/files/image.png"))
    response = image(media_gateway, "foreignurl", model="mapleai-flux")
    assert_envelope(response, 502, "upstream_link_refused")
    assert len(mapleai.received("/files/image.png")) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/image.png",
        "https://localhost/image.png",
        "https://[::1]/image.png",
        "https://[::ffff:127.0.0.1]/image.png",
        "https://2130706433/image.png",  # 127.0.0.1 as one number
        "https://0177.0.0.1/image.png",  # 127.0.0.1 in octal
        "https://0.0.0.0/image.png",
        "https://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "https://[fe80::1]/image.png",
        "https://10.0.0.5/image.png",
        "https://172.16.0.1/image.png",
        "https://192.168.1.1/image.png",
        "https://100.64.0.1/image.png",
        "https://[fc00::1]/image.png",
        "http://203.0.113.9/image.png",
        "file:///etc/passwd",
        "ftp://203.0.113.9/image.png",
        "https:///image.png",
        "https://[not-an-address]/image.png",
    ],
)
def test_mapleai_link_is_fetched_only_over_https_from_public_addresses(
    media_gateway: Gateway, url: str
) -> None:
    response = image(media_gateway, f"link:{url}", model="mapleai-flux")
    assert_envelope(response, 502, "upstream_link_refused")
    assert MAPLEAI_KEY not in response.text


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("notbase64", 502, "upstream_malformed"),
        ("notimage", 502, "upstream_malformed"),
        ("empty", 502, "upstream_malformed"),
        ("html", 502, "upstream_malformed"),
        ("urlhtml", 502, "upstream_malformed"),
        ("status:400", 400, "upstream_bad_request"),
        ("status:402", 503, "upstream_out_of_credit"),
        ("status:429", 429, "upstream_rate_limited"),
    ],
)
def test_mapleai_answer_without_an_image_is_a_gateway_error(
    media_gateway: Gateway, prompt: str, status: int, code: str
) -> None:
    response = image(media_gateway, prompt, model="mapleai-dalle")
    assert_envelope(response, status, code)
    assert MAPLEAI_KEY not in response.text


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"model": "flux"}, "missing_field", "prompt"),
        ({"prompt": "", "model": "flux"}, "invalid_value", "prompt"),
        ({"prompt": "   ", "model": "flux"}, "invalid_value", "prompt"),
        ({"prompt": "x" * 2001, "model": "flux"}, "invalid_value", "prompt"),
        ({"prompt": 5, "model": "flux"}, "invalid_value", "prompt"),
        ({"prompt": "a cat"}, "missing_field", "model"),
        ({"prompt": "a cat", "model": "flux", "width": 100000}, "invalid_value", "width"),
        ({"prompt": "a cat", "model": "flux", "width": -512}, "invalid_value", "width"),
        ({"prompt": "a cat", "model": "flux", "height": 0}, "invalid_value", "height"),
        ({"prompt": "a cat", "model": "flux", "width": "512"}, "invalid_value", "width"),
        ({"prompt": "a cat", "model": "flux", "width": 512.5}, "invalid_value", "width"),
        ({"prompt": "a cat", "model": "flux", "seed": 1.5}, "invalid_value", "seed"),
        ({"prompt": "a cat", "model": "flux", "seed": -2}, "invalid_value", "seed"),
        ({"prompt": "a cat", "model": "flux", "steps": 30}, "unknown_field", "steps"),
        ({"prompt": "a cat", "model": "veo"}, "model_not_found", "model"),
        ({"prompt": "a cat", "model": "openai"}, "model_not_found", "model"),
        ({"prompt": "a cat", "model": "dall-e-9"}, "model_not_found", "model"),
    ],
)
def test_bad_image_request_is_a_400_naming_the_field(
    media_gateway: Gateway, body: dict, code: str, param: str
) -> None:
    assert_envelope(media_gateway.client.post("/api/image", json=body), 400, code, param)


def test_video_model_on_the_image_route_says_what_it_is(media_gateway: Gateway) -> None:
    error = assert_envelope(image(media_gateway, "a cat", model="veo"), 400, "model_not_found", "model")
    assert "video model" in error["message"]


def test_invalid_key_on_the_image_route_is_a_401(media_gateway: Gateway) -> None:
    response = media_gateway.client.post(
        "/api/image", json={"prompt": "a cat", "model": "flux"}, headers={"Authorization": "Bearer cgpt_nope"}
    )
    assert_envelope(response, 401, "invalid_api_key")


def test_get_on_the_image_route_is_a_405(media_gateway: Gateway) -> None:
    response = media_gateway.client.get("/api/image")
    assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("verb", ["big", "chunked"])
def test_images_generations_streams_a_large_image_as_exact_base64(media_gateway: Gateway, verb: str) -> None:
    size = 3 * 1024 * 1024 + 1  # not a multiple of three, nor of the chunk size
    response = media_gateway.client.post(
        "/v1/images/generations", json={"model": "flux", "prompt": f"{verb}:{size}"}
    )
    assert response.status_code == 200
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    if verb == "big":
        assert int(response.headers["Content-Length"]) == len(response.content)
    else:
        assert "Content-Length" not in response.headers
    image = base64.b64decode(response.json()["data"][0]["b64_json"], validate=True)
    assert hashlib.sha256(image).hexdigest() == files.digest(size)


def test_images_generations_cut_midway_is_a_visibly_short_body(media_gateway: Gateway) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        media_gateway.client.post(
            "/v1/images/generations", json={"model": "flux", "prompt": f"cut:{TWELVE_MIB}"}
        )
