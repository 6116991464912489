"""POST /api/image: one image from a prompt, with any catalog image model.

Body: `prompt` (required), `model` (required), `width` and `height` (64 to 2048,
default 1024), `seed`. Answer: the image's bytes with the provider's
`Content-Type` (`image/png`, `image/jpeg`, ...), streamed as they arrive.
"""

from lib import catalog, providers, usage
from lib.identity import identify
from lib.limits import enforce
from lib.validation import parse_body
from lib.web import Request, Response, endpoint


def create_image(request: Request) -> Response:
    caller = identify(request)  # 401 for a key that does not verify
    request.response_headers.update(enforce(caller, "image"))  # 429 past the minute's budget
    meter = usage.meter(request, caller, "image")  # every answer from here on is recorded, once sent
    body = parse_body(request, "ImageRequest")  # 400 naming the field, 413 past the size cap
    model = catalog.resolve("image", body.model)  # 400 for a model not in the catalog
    caller.may_call(model.id)  # 403 for a model the key may not call
    meter.model, meter.delivered = model.id, {"images": 1}
    return providers.image(model, body)  # 502 for an answer that is not an image


app = endpoint(POST=create_image)
