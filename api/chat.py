"""POST /api/chat: a chat completion from any catalog chat model.

Body: OpenAI's chat request (`model`, `messages`, `temperature`, `max_tokens`,
`stream`, ...). Answer: a `chat.completion` object, or with `"stream": true` a
`text/event-stream` of `chat.completion.chunk` events ending in `data: [DONE]`.
"""

from lib import catalog, providers, usage
from lib.identity import identify
from lib.limits import enforce
from lib.validation import parse_body
from lib.web import Request, Response, endpoint


def create_chat_completion(request: Request) -> Response:
    caller = identify(request)  # 401 for a key that does not verify
    request.response_headers.update(enforce(caller, "chat"))  # 429 past the minute's budget
    meter = usage.meter(request, caller, "chat")  # every answer from here on is recorded, once sent
    body = parse_body(request, "ChatRequest")  # 400 naming the field, 413 past the size cap
    model = catalog.resolve("chat", body.model)  # 400 for a model not in the catalog
    caller.may_call(model.id)  # 403 for a model the key may not call
    meter.model, meter.stream = model.id, body.stream
    return providers.chat(model, body)


app = endpoint(POST=create_chat_completion)
