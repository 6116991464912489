"""Pollinations (gen.pollinations.ai): chat through its OpenAI-compatible endpoint,
images and videos through its media endpoint `GET /image/{prompt}`."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from lib import media
from lib.catalog import Model
from lib.providers.openai_compatible import chat_completion
from lib.schemas import ChatRequest, ImageRequest, VideoRequest
from lib.settings import settings
from lib.upstream import Deadline
from lib.web import Response

NAME = "pollinations"


def chat(model: Model, body: ChatRequest, deadline: Deadline) -> Response:
    current = settings()
    return chat_completion(
        NAME, current.pollinations_base_url, current.pollinations_api_key, model, body, deadline
    )


def image(model: Model, body: ImageRequest, deadline: Deadline) -> Response:
    params: dict[str, object] = {"model": model.upstream, "width": body.width, "height": body.height}
    if body.seed is not None:
        params["seed"] = body.seed
    return _generate(body.prompt, params, "image", deadline)


def video(model: Model, body: VideoRequest, deadline: Deadline) -> Response:
    """A clip from the same endpoint; it takes a length and an aspect ratio, not a size.

    Pollinations answers only once the clip is rendered, which may take minutes: the
    answer may take the call's whole time budget, not just the first-byte timeout.
    """
    params = {"model": model.upstream, "duration": body.duration, "aspectRatio": body.aspect_ratio}
    return _generate(body.prompt, params, "video", deadline, first_byte=deadline.left())


def _generate(
    prompt: str, params: dict[str, object], kind: str, deadline: Deadline, first_byte: float | None = None
) -> Response:
    current = settings()
    query = urlencode({**params, "nologo": "true"})
    # "." and ".." would be read as dot-segments and dropped from the path: they travel as %2E.
    segment = quote(prompt, safe="") if prompt not in (".", "..") else prompt.replace(".", "%2E")
    url = f"{current.pollinations_base_url}/image/{segment}?{query}"
    return media.fetch(
        NAME, url, kind, api_key=current.pollinations_api_key, deadline=deadline, first_byte=first_byte
    )
