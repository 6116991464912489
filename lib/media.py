"""Images and videos from a provider, passed on to the caller as they arrive.

A provider's file is checked to be what was asked for (an `image/*` or `video/*`
content type) before the caller's status is sent: a 200 that carries JSON or an
HTML page is the provider's failure (502), never a broken file handed on. An image
may also be answered as OpenAI's images JSON, its base64 written as it arrives.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable, Iterator, Sequence

from lib import transport
from lib.errors import UpstreamError
from lib.upstream import Deadline, chunks, open_response
from lib.web import Response, dumps, media_stream

# A media type as RFC 9110 8.3.1 writes it: type "/" subtype *( OWS ";" OWS name "=" value ),
# a value a token or a quoted string (visible ASCII); nothing else is passed on to the caller.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(
    rf"(?P<type>{_TOKEN})/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"(?:[\t !#-\[\]-~]|\\[\t -~])*\"))*"
)

# What a file's first bytes say it is, for providers that send an image inline.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def fetch(
    provider: str,
    url: str,
    kind: str,
    *,
    api_key: str | None,
    deadline: Deadline,
    first_byte: float | None = None,
    addresses: Sequence[transport.Address] | None = None,
) -> Response:
    """GET `url` and stream it on, once it is checked to be of `kind` ("image" or "video").

    `addresses`, for a link to another host, are the checked ones to connect to (lib.links).
    """
    response = open_response(
        provider, "GET", url, api_key=api_key, deadline=deadline, first_byte=first_byte, addresses=addresses
    )
    content_type = (response.headers.get("Content-Type") or "").strip()
    well_formed = _MEDIA_TYPE.fullmatch(content_type)
    if well_formed is None or well_formed["type"].lower() != kind:
        response.close()
        shown = repr(content_type[:100]) if content_type else "no content type"
        raise UpstreamError(
            f"{provider} answered with {shown} instead of an {kind}.", code="upstream_malformed"
        )
    # Bodies come without content coding (lib.transport): a length that framed the body is the caller's too.
    return media_stream(_chunks(provider, response, deadline), content_type, response.length)


def _chunks(provider: str, response: transport.Response, deadline: Deadline) -> Iterator[bytes]:
    try:
        yield from (chunk for chunk in chunks(provider, response, deadline) if chunk)
    finally:
        response.close()


def inline_image(provider: str, data: bytes) -> Response:
    """An image a provider sent inside its JSON answer, checked by its first bytes."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return media_stream([data], content_type, len(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return media_stream([data], "image/webp", len(data))
    raise UpstreamError(f"{provider} sent image data in no format CloudGPT knows.", code="upstream_malformed")


def b64_json(image: Response) -> Response:
    """An image answer as OpenAI's `{"created", "output_format", "data": [{"b64_json"}]}`.

    The JSON is written as the image's bytes arrive, so memory stays flat; a failure
    midway drops the connection, as it does for the image itself.
    """
    subtype = image.headers["Content-Type"].split(";")[0].split("/")[1].strip().lower()
    head = dumps({"created": int(time.time()), "output_format": subtype})[:-1] + b',"data":[{"b64_json":"'
    tail = b'"}]}'
    headers = {**image.headers, "Content-Type": "application/json"}  # the provider's name stays
    length = headers.pop("Content-Length", None)
    if length is not None:
        headers["Content-Length"] = str(len(head) + 4 * -(-int(length) // 3) + len(tail))
    return Response(_base64_json(head, image.body, tail), image.status, headers)


def _base64_json(head: bytes, data: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    """`head`, then `data` in base64 (three bytes at a time, so the pieces join), then `tail`."""
    try:
        yield head
        rest = b""
        for chunk in data:
            rest += chunk
            whole = len(rest) - len(rest) % 3
            if whole:
                yield base64.b64encode(rest[:whole])
                rest = rest[whole:]
        yield base64.b64encode(rest) + tail
    finally:
        close = getattr(data, "close", None)
        if close is not None:
            close()
