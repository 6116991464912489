"""MapleAI (api.mapleai.de): an OpenAI-style API behind CloudGPT's own Bearer key.

Chat goes through `POST /v1/chat/completions`, answered exactly as every other
chat provider's; images through OpenAI-style image generations; videos are
asynchronous jobs that are created, polled until they finish, then downloaded.
Unlike Pollinations, MapleAI has no anonymous tier, so without `MAPLEAI_API_KEY`
its models are unavailable (a 503 that a fallback may answer).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any
from urllib.parse import quote

from lib import links, media
from lib.catalog import Model
from lib.errors import GatewayError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from lib.providers.openai_compatible import chat_completion
from lib.schemas import ChatRequest, ImageRequest, VideoRequest
from lib.settings import settings
from lib.upstream import Deadline, open_response, parse_json, read_body
from lib.web import Response

NAME = "mapleai"
log = logging.getLogger("cloudgpt")

_JOB_FINAL = ("completed", "failed", "cancelled")
_JOB_RUNNING = ("queued", "processing")
# Polls start soon (short clips finish in seconds) and back off to spare the API.
_POLL_FIRST, _POLL_FACTOR, _POLL_MAX = 0.5, 1.5, 10.0


def _account() -> tuple[str, str]:
    """MapleAI's base URL and CloudGPT's key for it, or a 503 when no key is configured."""
    current = settings()
    if not current.mapleai_api_key:
        raise ServiceUnavailable(
            "MapleAI models are not available on this gateway (MAPLEAI_API_KEY is not set).",
            code="provider_not_configured",
        )
    return current.mapleai_base_url, current.mapleai_api_key


def chat(model: Model, body: ChatRequest, deadline: Deadline) -> Response:
    base_url, api_key = _account()
    return chat_completion(NAME, base_url, api_key, model, body, deadline)


def image(model: Model, body: ImageRequest, deadline: Deadline) -> Response:
    """One image: MapleAI answers it inline (`b64_json`) or as a link (`url`) to fetch."""
    base, key = _account()
    answer = _call("POST", "/v1/images/generations", deadline, {
        "model": model.upstream, "prompt": body.prompt, "n": 1, "size": body.size,
    })  # fmt: skip
    data = answer.get("data")
    item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if isinstance(item.get("b64_json"), str):
        try:
            return media.inline_image(NAME, base64.b64decode(item["b64_json"], validate=True))
        except binascii.Error:
            raise UpstreamError(
                f"{NAME} sent an image that is not base64.", code="upstream_malformed"
            ) from None
    if isinstance(item.get("url"), str):
        url = item["url"]
        # CloudGPT's key goes to MapleAI only, never to the host a link points at; a link
        # elsewhere must be https to a public address (never loopback, private, link-local).
        addresses = links.public_addresses(NAME, url, base)  # None: MapleAI's own host
        return media.fetch(
            NAME,
            url,
            "image",
            api_key=key if addresses is None else None,
            deadline=deadline,
            addresses=addresses,
        )
    raise UpstreamError(f"{NAME} answered without an image.", code="upstream_malformed")


def video(model: Model, body: VideoRequest, deadline: Deadline) -> Response:
    """Create the job, poll it with backoff within the time budget, then stream the file.

    A job that fails or is cancelled is a 502 carrying MapleAI's reason; one still
    running when `VIDEO_JOB_TIMEOUT` (or the call's deadline) has passed is cancelled,
    so it costs nothing more, and is a 504.
    """
    base, key = _account()
    # Creating a job twice would pay for two clips: never retried.
    job = _call("POST", "/v1/video/generations", deadline, {
        "model": model.upstream, "prompt": body.prompt, "seconds": str(body.duration), "size": body.size,
    }, retries=0)  # fmt: skip
    job_id = job.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise UpstreamError(f"{NAME} answered without a video job id.", code="upstream_malformed")
    path = f"/v1/video/generations/{quote(job_id, safe='')}"
    budget = min(settings().video_job_timeout, deadline.left())
    polls = Deadline.start(budget)
    delay = _POLL_FIRST
    while (status := _job_status(job)) in _JOB_RUNNING:
        left = polls.left()
        if left <= 0:
            _cancel(path)
            raise UpstreamTimeout(
                f"{NAME}'s video job {job_id} did not finish in {budget:g} seconds; it was cancelled.",
                code="upstream_job_timeout",
            )
        time.sleep(min(delay, left))
        delay = min(delay * _POLL_FACTOR, _POLL_MAX)
        job = _call("GET", path, deadline)
    if status != "completed":
        raise UpstreamError(
            f"{NAME}'s video job {job_id} {status}: {_reason(job)}", code="upstream_job_failed"
        )
    return media.fetch(NAME, f"{base}{path}/download", "video", api_key=key, deadline=deadline)


def _call(
    method: str,
    path: str,
    deadline: Deadline,
    body: dict[str, Any] | None = None,
    *,
    retries: int | None = None,
) -> dict[str, Any]:
    """One JSON call to MapleAI's API, its answer read whole (it is small) and parsed."""
    base, key = _account()
    response = open_response(
        NAME, method, f"{base}{path}", api_key=key, json_body=body, deadline=deadline, retries=retries
    )
    raw = read_body(NAME, response, deadline)
    answer = parse_json(raw)
    if not isinstance(answer, dict):
        raise UpstreamError(
            f"{NAME} answered {path} with something that is not JSON.", code="upstream_malformed"
        )
    return answer


def _job_status(job: dict[str, Any]) -> str:
    """The job's status; the reference lets it be null, which can only mean not done yet."""
    status = job.get("status") or "queued"
    if status not in _JOB_FINAL + _JOB_RUNNING:
        raise UpstreamError(f"{NAME} reported a video job status {status!r}.", code="upstream_malformed")
    return status


def _reason(job: dict[str, Any]) -> str:
    """Why a job failed, in MapleAI's words when it gives them (`error` or `error.message`)."""
    error = job.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return " ".join(error.split())[:500] if isinstance(error, str) and error.strip() else "no reason given"


def _cancel(path: str) -> None:
    """Best effort, within a few seconds: the caller's 504 does not depend on the cancellation."""
    try:
        _call("POST", f"{path}/cancel", Deadline.start(5.0), retries=0)
    except GatewayError as error:
        log.warning("cancelling %s %s failed: %s", NAME, path, error.message)
