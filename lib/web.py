"""The WSGI layer every function shares: requests in, responses and errors out.

`endpoint()` wraps handlers into a WSGI `app` that answers CORS preflights, refuses
wrong methods with 405 and `Allow`, stamps `X-Request-Id` on every response and
turns every exception into the error envelope, so no request ever sees a bare 500
page or a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from lib.errors import (
    BadRequest,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    PayloadTooLarge,
    PermissionDenied,
)
from lib.settings import settings

log = logging.getLogger("cloudgpt")

EXPOSED_HEADERS = (
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "X-RateLimit-Status, Retry-After, X-CloudGPT-Provider"
)
_READ_CHUNK = 64 * 1024


# A host as a URL carries it: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


class Request:
    """One incoming request, read lazily from the WSGI environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = environ.get("PATH_INFO", "/")
        self.id = "req_" + os.urandom(12).hex()  # what secrets.token_hex(12) is, without its layers
        self.started = time.perf_counter()  # when it arrived, for the latency its activity entry states
        # Headers every response to this request carries (rate-limit state, provider).
        self.response_headers: dict[str, str] = {}
        # Called once the answer was sent or abandoned (the server closed its body), with
        # the response and whether it failed: where usage is recorded, off the caller's time.
        self.on_sent: Callable[[Response, bool], None] | None = None

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        return self.environ.get(key)

    def query(self, name: str) -> str:
        """A query parameter's first value ("" when absent)."""
        return self.given(name) or ""

    def given(self, name: str) -> str | None:
        """A query parameter's first value, None when absent: `?days=` is given, and blank."""
        pairs = parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
        return next((v for k, v in pairs if k == name), None)

    @property
    def remote_addr(self) -> str:
        return self.environ.get("REMOTE_ADDR") or "unknown"

    def body(self, limit: int) -> bytes:
        """The raw body, refused with 413 past `limit` bytes without reading the rest."""
        declared = self.environ.get("CONTENT_LENGTH")
        stream = self.environ.get("wsgi.input")
        if stream is None:
            return b""
        if declared:
            try:
                length = int(declared)
            except ValueError:
                raise BadRequest("Content-Length is not a number.", code="invalid_header") from None
            if length > limit:
                raise _too_large(limit)
            return _read_exactly(stream, length)
        if not self.environ.get("wsgi.input_terminated"):
            return b""  # no length and no chunked framing: WSGI says there is no body
        parts, size = [], 0
        while chunk := stream.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
        return b"".join(parts)


def origin(request: Request) -> str:
    """The origin the caller reached: the request's scheme and its `Host`.

    Only `Host` is read, never `X-Forwarded-Host`: Vercel sets `Host` to the domain the
    client asked for (it routes on it), but a function's environ cannot tell the
    platform's `x-forwarded-host` from a client's `X_Forwarded_Host`, which Vercel's
    runtime also writes to `HTTP_X_FORWARDED_HOST`. The scheme is the runtime's, from
    `x-forwarded-proto`, which the platform sets.
    """
    environ = request.environ
    host = request.header("Host") or ""
    if not _HOST.fullmatch(host):
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '80')}"
        if not _HOST.fullmatch(host):
            host = "localhost"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than the {limit} bytes this endpoint accepts.")


def _read_exactly(stream: Any, length: int) -> bytes:
    parts, left = [], length
    while left > 0:
        chunk = stream.read(min(left, _READ_CHUNK))
        if not chunk:
            raise BadRequest("Request body ended before its Content-Length.", code="invalid_body")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class Response:
    """Status, headers and a body iterable; a streaming body is sent as it is produced."""

    def __init__(
        self,
        body: Iterable[bytes],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = headers or {}
        # What producing the answer used (`promptTokens`, ...), and `errors` once it failed midway.
        self.used: dict[str, int] = {}
        # The error code the caller heard, in the envelope or in a stream's last event.
        self.error: str | None = None
        # perf_counter() when the server took the first byte of the body, and when it closed it.
        self.first_byte_at: float | None = None
        self.ended_at: float | None = None


def dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = dumps(data)
    return Response(
        [body],
        status,
        {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})},
    )


def csv_response(columns: tuple[str, ...], rows: Iterable[dict[str, object]], name: str) -> Response:
    """`rows` as `text/csv` for spreadsheets: a header row of `columns`, then one line per row, downloaded as `name`."""
    import csv  # only the routes that offer CSV pay for it
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    body = text.getvalue().encode()
    return Response(
        [body],
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Length": str(len(body)),
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


def error_response(error: GatewayError, request: Request) -> Response:
    response = json_response(error.envelope(request.id), error.status, error.headers)
    response.error = error.code
    return response


def event_stream(
    events: Iterator[bytes], headers: dict[str, str] | None = None, used: dict[str, int] | None = None
) -> Response:
    """A `text/event-stream` response whose events are sent as they are produced.

    A failure after the first byte can no longer change the status, so it is sent
    as a last `data: {"error": ...}` event and the stream ends there; `used` (which
    the events may fill in as they go) then counts it in `errors`.
    """
    response = Response(
        [],
        200,
        {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        },
    )
    if used is not None:
        response.used = used
    response.body = _guarded(events, response)
    return response


def media_stream(chunks: Iterable[bytes], content_type: str, content_length: int | None = None) -> Response:
    """Bytes (an image, a video) sent on as they arrive: memory stays flat whatever the size.

    A failure after the first byte can no longer change the status, so it is raised
    to the server, which drops the connection: the caller sees a short body, never a
    complete-looking one.
    """
    headers = {"Content-Type": content_type}
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    return Response(chunks, 200, headers)


def _guarded(events: Iterator[bytes], response: Response) -> Iterator[bytes]:
    try:
        yield from events
    except GatewayError as error:
        yield _last_event(error, response)
    except Exception:
        log.exception("stream failed")
        yield _last_event(InternalError("The stream failed inside the gateway."), response)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _last_event(error: GatewayError, response: Response) -> bytes:
    """The error event a failed stream ends with, counted as the answer's error."""
    response.used["errors"], response.error = 1, error.code
    return b"data: " + dumps(error.envelope()) + b"\n\n"


Handler = Callable[[Request], Response]
WSGIApp = Callable[..., Iterable[bytes]]


def endpoint(**handlers: Handler) -> WSGIApp:
    """A WSGI app serving one route: `endpoint(GET=list_models)`, one handler per method."""
    allowed = ", ".join([*handlers, "OPTIONS"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            request.response_headers.update(cross_origin(request))
            if request.method == "OPTIONS":
                response = _preflight(request, allowed)
            elif request.method not in handlers:
                raise MethodNotAllowed(
                    f"{request.method} is not allowed here; use {allowed}.",
                    headers={"Allow": allowed},
                )
            else:
                response = handlers[request.method](request)
        except GatewayError as error:
            response = error_response(error, request)
        except Exception:
            log.exception("unhandled error in %s %s (%s)", request.method, request.path, request.id)
            response = error_response(InternalError("Something went wrong inside the gateway."), request)
        return _start(request, response, start_response)

    return app


def _start(request: Request, response: Response, start_response: Callable[..., Any]) -> Iterable[bytes]:
    if response.status >= 500:
        log.warning("%s %s -> %d (%s)", request.method, request.path, response.status, request.id)
    headers = {
        "X-Request-Id": request.id,
        "Cache-Control": "no-store",
        **request.response_headers,
        **response.headers,
    }
    start_response(_status_line(response.status), list(headers.items()))
    if request.on_sent is not None:
        return _Reported(response, request.on_sent)
    return response.body


class _Reported:
    """A response body that reports how it ended once the server closes it.

    Servers close the body after its last chunk (or when the caller leaves); the
    report runs then, never before a byte the caller waits for was handed over.
    A failure raised while producing it (a media stream cut off) counts as failed.
    """

    def __init__(self, response: Response, report: Callable[[Response, bool], None]) -> None:
        self._response = response
        self._report = report
        self._chunks = iter(response.body)
        self._failed = response.status >= 400

    def __iter__(self) -> _Reported:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            raise
        except Exception as error:
            self._failed = True
            self._response.error = error.code if isinstance(error, GatewayError) else InternalError.code
            raise
        if self._response.first_byte_at is None and chunk:
            self._response.first_byte_at = time.perf_counter()
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._response.body, "close", None)
            if close is not None:
                close()
        finally:
            self._response.ended_at = time.perf_counter()
            try:
                self._report(self._response, self._failed or bool(self._response.used.get("errors")))
            except Exception:  # the answer is out: what reporting it does must not break the server
                log.exception("reporting an answer failed")


def failing(error: GatewayError) -> WSGIApp:
    """A WSGI app that answers every request with `error`, e.g. a 404 for no route."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return _start(request, error_response(error, request), start_response)

    return app


_ANY_ORIGIN = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}


def cross_origin(request: Request) -> dict[str, str]:
    """The CORS headers for this request; a 403 when it comes from a web page that may not call.

    CLOUDGPT_CORS_ORIGINS: `*` lets any page call and read (no credentials: a key is sent
    by the page's own script). Else only the listed origins and the pages' own origin may:
    a browser names the page's origin in `Origin`, so a page elsewhere is refused before
    its request costs anything, not only kept from reading the answer.
    """
    allowed = settings().cors_origins
    if allowed == ("*",):
        return _ANY_ORIGIN
    sent = request.header("Origin")
    if sent is None:  # not a browser's cross-origin call: curl, an SDK, a same-origin GET
        return {"Vary": "Origin"}
    if sent.lower() in allowed:
        return {"Access-Control-Allow-Origin": sent, "Access-Control-Expose-Headers": EXPOSED_HEADERS,
                "Vary": "Origin"}  # fmt: skip
    if sent.lower() == origin(request).lower():  # the pages' own: same-origin needs no CORS header
        return {"Vary": "Origin"}
    raise PermissionDenied(
        "Web pages of this origin may not call this API; its operator can allow it in CLOUDGPT_CORS_ORIGINS.",
        code="origin_not_allowed",
    )


def _preflight(request: Request, allowed: str) -> Response:
    asked = request.header("Access-Control-Request-Headers")
    return Response(
        [],
        204,
        {
            "Allow": allowed,
            "Access-Control-Allow-Methods": allowed,
            "Access-Control-Allow-Headers": asked or "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
        },
    )


@cache  # a handful of statuses, each looked up once
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
