"""POST /api/video end to end: Pollinations' media endpoint and MapleAI's asynchronous jobs, over real HTTP."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes import files
from tests.fakes.mapleai import REASON, FakeMapleAI
from tests.fakes.pollinations import FakePollinations
from tests.mapleai_fixtures import JOB_BUDGET, MAPLEAI_KEY
from tests.test_bad_input import assert_envelope
from tests.test_image import TWELVE_MIB, curl, received


def video(gateway: Gateway, prompt: str, model: str = "veo", **fields: object) -> httpx.Response:
    return gateway.client.post("/api/video", json={"prompt": prompt, "model": model, **fields})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("model", ["veo", "mapleai-veo"])
def test_spec_curl_example_writes_the_video_to_a_file(
    media_gateway: Gateway, tmp_path: Path, model: str
) -> None:
    out = tmp_path / "video.mp4"
    curl(media_gateway, "/api/video", f'{{"prompt": "Ocean waves", "model": "{model}", "duration": 4}}', out)
    assert out.read_bytes() == files.MP4


@pytest.mark.parametrize(
    ("size", "ratio"),
    [({}, "16:9"), ({"width": 1920, "height": 1080}, "16:9"), ({"width": 720, "height": 1280}, "9:16")],
)
def test_pollinations_video_takes_duration_and_aspect_ratio(
    media_gateway: Gateway, upstream: FakePollinations, size: dict, ratio: str
) -> None:
    prompt = f"a cat playing {ratio} {size}"
    response = video(media_gateway, prompt, model="seedance", duration=10, **size)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Length"] == str(len(files.MP4))
    assert response.headers["X-CloudGPT-Provider"] == "pollinations"
    assert response.headers["X-RateLimit-Remaining"].isdigit()
    assert response.content == files.MP4
    sent, query = upstream.received_media(prompt)
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert query == {"model": "seedance", "duration": "10", "aspectRatio": ratio, "nologo": "true"}


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("json", 502, "upstream_malformed"),
        ("html", 502, "upstream_malformed"),
        ("status:402", 503, "upstream_out_of_credit"),
        ("status:500", 502, "upstream_error"),
    ],
)
def test_pollinations_answer_that_is_not_a_video_is_a_gateway_error(
    media_gateway: Gateway, prompt: str, status: int, code: str
) -> None:
    assert_envelope(video(media_gateway, prompt), status, code)


def test_pollinations_video_may_take_the_whole_budget_where_an_image_may_not(start_gateway) -> None:
    gateway = start_gateway(UPSTREAM_FIRST_BYTE_TIMEOUT="1", UPSTREAM_DEADLINE="3")
    rendered = video(gateway, "slow:1.5")
    assert rendered.status_code == 200
    assert rendered.headers["Content-Type"] == "video/mp4"
    image = gateway.client.post("/api/image", json={"prompt": "slow:1.5", "model": "flux"})
    assert_envelope(image, 504, "upstream_timeout")

    started = time.monotonic()
    assert_envelope(video(gateway, "slow:5"), 504, "upstream_timeout")
    assert time.monotonic() - started < 4  # the deadline, not the provider, ends it


def test_mapleai_job_goes_queued_processing_completed_then_downloads(
    media_gateway: Gateway, mapleai: FakeMapleAI
) -> None:
    response = video(media_gateway, "a paper boat", model="mapleai-veo", duration=8, width=720, height=1280)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["X-CloudGPT-Provider"] == "mapleai"
    assert response.content == files.MP4
    job = mapleai.job("a paper boat")
    assert job.body == {"model": "veo-3", "prompt": "a paper boat", "seconds": "8", "size": "720x1280"}
    assert job.polls == 2 and job.status == "completed" and not job.cancelled
    calls = [(r.method, r.path) for r in mapleai.requests if job.id in r.path]
    path = f"/v1/video/generations/{job.id}"
    assert calls == [("GET", path), ("GET", path), ("GET", f"{path}/download")]
    assert all(
        r.headers["Authorization"] == f"Bearer {MAPLEAI_KEY}" for r in mapleai.requests if job.id in r.path
    )


def test_mapleai_twelve_mib_video_passes_through_intact(media_gateway: Gateway) -> None:
    body = {"prompt": f"big:{TWELVE_MIB}", "model": "mapleai-veo"}
    with media_gateway.client.stream("POST", "/api/video", json=body) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(TWELVE_MIB)
        assert received(response) == (TWELVE_MIB, files.digest(TWELVE_MIB))


@pytest.mark.parametrize(("prompt", "status"), [("fail", "failed"), ("cancelled", "cancelled")])
def test_mapleai_job_that_fails_is_a_502_with_its_reason(
    media_gateway: Gateway, mapleai: FakeMapleAI, prompt: str, status: str
) -> None:
    error = assert_envelope(video(media_gateway, prompt, model="mapleai-veo"), 502, "upstream_job_failed")
    job = mapleai.job(prompt)
    assert f"{job.id} {status}" in error["message"]
    assert (REASON if status == "failed" else "no reason given") in error["message"]
    assert not mapleai.received(f"/v1/video/generations/{job.id}/download")


def test_mapleai_job_that_never_finishes_is_cancelled_and_a_504(
    media_gateway: Gateway, mapleai: FakeMapleAI
) -> None:
    started = time.monotonic()
    response = video(media_gateway, "never", model="mapleai-veo")
    elapsed = time.monotonic() - started
    error = assert_envelope(response, 504, "upstream_job_timeout")
    assert f"{JOB_BUDGET:g} seconds" in error["message"]
    assert JOB_BUDGET <= elapsed < JOB_BUDGET + 2
    job = mapleai.job("never")
    assert job.cancelled and job.polls >= 2
    assert mapleai.received(f"/v1/video/generations/{job.id}/cancel")[0].method == "POST"


def test_mapleai_video_job_is_never_created_twice_while_an_image_is_retried(
    media_gateway: Gateway, mapleai: FakeMapleAI
) -> None:
    def attempts(path: str) -> int:
        return sum(1 for request in mapleai.received(path) if request.body["prompt"] == "status:503")

    jobs, images = attempts("/v1/video/generations"), attempts("/v1/images/generations")
    assert_envelope(video(media_gateway, "status:503", model="mapleai-veo"), 502, "upstream_error")
    failed = media_gateway.client.post("/api/image", json={"prompt": "status:503", "model": "mapleai-flux"})
    assert_envelope(failed, 502, "upstream_error")
    assert attempts("/v1/video/generations") - jobs == 1
    assert attempts("/v1/images/generations") - images == 3  # the first try and two retries


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("weird", 502, "upstream_malformed"),
        ("downloadhtml", 502, "upstream_malformed"),
        ("status:400", 400, "upstream_bad_request"),
        ("status:401", 502, "upstream_auth_failed"),
        ("status:402", 503, "upstream_out_of_credit"),
    ],
)
def test_mapleai_job_answers_that_are_not_a_video_are_gateway_errors(
    media_gateway: Gateway, prompt: str, status: int, code: str
) -> None:
    response = video(media_gateway, prompt, model="mapleai-veo")
    assert_envelope(response, status, code)
    assert MAPLEAI_KEY not in response.text


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"model": "veo"}, "missing_field", "prompt"),
        ({"prompt": "", "model": "veo"}, "invalid_value", "prompt"),
        ({"prompt": "waves", "model": "veo", "duration": 9}, "invalid_value", "duration"),
        ({"prompt": "waves", "model": "seedance", "duration": 11}, "invalid_value", "duration"),
        ({"prompt": "waves", "model": "mapleai-veo", "duration": 9}, "invalid_value", "duration"),
        ({"prompt": "waves", "model": "veo", "duration": 0}, "invalid_value", "duration"),
        ({"prompt": "waves", "model": "veo", "duration": "4"}, "invalid_value", "duration"),
        ({"prompt": "waves", "model": "veo", "width": 100000}, "invalid_value", "width"),
        ({"prompt": "waves", "model": "veo", "height": -720}, "invalid_value", "height"),
        ({"prompt": "waves", "model": "veo", "seed": 1}, "unknown_field", "seed"),
        ({"prompt": "waves", "model": "flux"}, "model_not_found", "model"),
    ],
)
def test_bad_video_request_is_a_400_naming_the_field(
    media_gateway: Gateway, body: dict, code: str, param: str
) -> None:
    assert_envelope(media_gateway.client.post("/api/video", json=body), 400, code, param)


def test_media_limits_are_five_and_two_a_minute_for_anonymous_callers(start_gateway) -> None:
    gateway = start_gateway()
    into = time.time() % 60
    if into > 57:  # keep the burst inside one fixed window
        time.sleep(60 - into + 0.05)
    for route, limit, model in (("/api/image", 5, "flux"), ("/api/video", 2, "veo")):
        statuses = [
            gateway.client.post(route, json={"prompt": "count me", "model": model}) for _ in range(limit + 1)
        ]
        assert [r.status_code for r in statuses] == [200] * limit + [429], route
        assert [r.headers["X-RateLimit-Limit"] for r in statuses] == [str(limit)] * (limit + 1)
        assert_envelope(statuses[-1], 429, "rate_limit_exceeded")
        assert statuses[-1].headers["Retry-After"].isdigit()
