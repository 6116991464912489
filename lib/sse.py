"""Server-sent events relayed from a provider, one event at a time.

Each upstream `data:` event is checked to be JSON and forwarded the moment it
arrives. A stream that breaks, or ends without `data: [DONE]`, ends in an error
(sent by the web layer as a final error event), never in a made-up success.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from lib.errors import UpstreamError
from lib.upstream import transport_errors

DONE = b"data: [DONE]\n\n"


def relay(provider: str, response: httpx.Response) -> Iterator[bytes]:
    """Our SSE events for the provider's open streaming response; closes it."""
    try:
        with transport_errors(
            f"{provider} stopped sending mid-stream.",
            f"{provider} cut the stream off.",
            "upstream_stream_cut",
        ):
            yield from _events(provider, response)
    finally:
        response.close()


def _events(provider: str, response: httpx.Response) -> Iterator[bytes]:
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` and `id:` fields
        data = line[5:].strip()
        if data == "[DONE]":
            yield DONE
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{provider} sent a malformed stream event.", code="upstream_malformed"
            ) from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise UpstreamError(f"{provider} failed mid-stream.", code="upstream_stream_error")
        yield b"data: " + data.encode() + b"\n\n"
    raise UpstreamError(f"{provider} ended the stream without [DONE].", code="upstream_stream_incomplete")
