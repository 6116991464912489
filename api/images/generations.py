"""POST /api/images/generations, also served as POST /v1/images/generations: OpenAI's image endpoint.

Body: `model` and `prompt` (required), `size` `WxH` (each side 64 to 2048, default
`1024x1024`), `n` (1), `response_format` (`b64_json`, the default and the only one:
CloudGPT keeps no images to link to), `user`. Answer: `{"created",
"output_format", "data": [{"b64_json"}]}`, the same image /api/image sends, in base64.
"""

from lib import catalog, media, providers, usage
from lib.identity import identify
from lib.limits import enforce
from lib.validation import parse_body
from lib.web import Request, Response, endpoint


def create_image_generation(request: Request) -> Response:
    caller = identify(request)  # 401 for a key that does not verify
    request.response_headers.update(enforce(caller, "image"))  # 429 past the minute's budget
    meter = usage.meter(request, caller, "image")  # every answer from here on is recorded, once sent
    body = parse_body(request, "ImageGenerationRequest")  # 400 naming the field, 413 past the size cap
    model = catalog.resolve("image", body.model)  # 400 for a model not in the catalog
    caller.may_call(model.id)  # 403 for a model the key may not call
    meter.model, meter.delivered = model.id, {"images": 1}
    image = providers.image(model, body.image_request())  # 502 for an answer that is not an image
    return media.b64_json(image)


app = endpoint(POST=create_image_generation)
