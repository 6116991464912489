"""Server-sent events relayed from a provider, one event at a time.

Each upstream `data:` event is checked to be JSON and forwarded the moment it
arrives. A stream that breaks, stalls, or ends without `data: [DONE]` ends in an
error (sent by the web layer as a final error event), never in a made-up success.
Until the provider's first byte, a `: keep-alive` comment every few seconds keeps
proxies from cutting a caller who is only waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

from lib import transport
from lib.errors import UpstreamError
from lib.settings import settings
from lib.upstream import Deadline, chunks, parse_json
from lib.usage import tokens
from lib.web import dumps

DONE = b"data: [DONE]\n\n"
LINE_LIMIT = 1024 * 1024  # an event line longer than this is not a chat chunk; memory stays bounded
KEEPALIVE = b": keep-alive\n\n"


def relay(
    provider: str,
    response: transport.Response,
    deadline: Deadline,
    used: dict[str, int],
    *,
    forward_usage: bool,
) -> Iterator[bytes]:
    """Our SSE events for the provider's open streaming response; closes it, also when the caller leaves.

    The tokens a chunk's `usage` states go into `used`. OpenAI sends them in an extra
    last chunk with no choices (and `"usage": null` in every other); unless
    `forward_usage`, that chunk is dropped and the field removed from the others.
    """
    try:
        body = chunks(provider, response, deadline, keepalive=settings().stream_keepalive_interval)
        yield from _events(provider, _lines(provider, body), used, forward_usage)
    finally:
        response.close()


def _lines(provider: str, body: Iterator[bytes | None]) -> Iterator[bytes | None]:
    """Complete lines (without their end) as they arrive, each at most LINE_LIMIT; keep-alive ticks pass through."""
    pending = b""
    for chunk in body:
        if chunk is None:
            yield None
            continue
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
        if len(pending) > LINE_LIMIT:
            raise UpstreamError(
                f"{provider} sent a stream line longer than {LINE_LIMIT} bytes.", code="upstream_malformed"
            )
    if pending:
        yield pending


def _events(
    provider: str, lines: Iterator[bytes | None], used: dict[str, int], forward_usage: bool
) -> Iterator[bytes]:
    for line in lines:
        if line is None:
            yield KEEPALIVE
            continue
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, `event:` and `id:` fields
        data = line[5:].strip()
        if data == b"[DONE]":
            yield DONE
            return
        chunk = parse_json(data)
        if not isinstance(chunk, dict):
            raise UpstreamError(f"{provider} sent a malformed stream event.", code="upstream_malformed")
        if "error" in chunk:
            raise UpstreamError(f"{provider} failed mid-stream.", code="upstream_stream_error")
        if "usage" in chunk:
            used.update(tokens(chunk["usage"]))
            if not forward_usage:  # as OpenAI answers a caller who did not ask: no usage anywhere
                if chunk.get("choices") == []:
                    continue  # the extra usage chunk
                del chunk["usage"]
                data = dumps(chunk)
        yield b"data: " + data + b"\n\n"
    raise UpstreamError(f"{provider} ended the stream without [DONE].", code="upstream_stream_incomplete")
