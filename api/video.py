"""POST /api/video: one clip from a prompt, with any catalog video model.

Body: `prompt` (required), `model` (required), `duration` (seconds, default 4, at
most the model's `maxDuration`), `width` and `height` (128 to 1920, default
1280x720; landscape or portrait). Answer: the video's bytes (`video/mp4`),
streamed as they arrive.
"""

from lib import catalog, providers, usage
from lib.identity import identify
from lib.limits import enforce
from lib.validation import parse_body
from lib.web import Request, Response, endpoint


def create_video(request: Request) -> Response:
    caller = identify(request)  # 401 for a key that does not verify
    request.response_headers.update(enforce(caller, "video"))  # 429 past the minute's budget
    meter = usage.meter(request, caller, "video")  # every answer from here on is recorded, once sent
    body = parse_body(request, "VideoRequest")  # 400 naming the field, 413 past the size cap
    model = catalog.resolve("video", body.model)  # 400 for a model not in the catalog
    caller.may_call(model.id)  # 403 for a model the key may not call
    meter.model = model.id
    body.check_duration(model.max_duration)  # 400 for a clip longer than the model makes
    meter.delivered = {"videoSeconds": body.duration}
    return providers.video(model, body)  # 502 for a failed job, 504 for one that never ends


app = endpoint(POST=create_video)
