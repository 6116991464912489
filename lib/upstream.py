"""Calls to providers: one pooled HTTP client, bounded in time, retried, failures mapped.

A provider's failure is never passed through raw. Its 400 is the caller's problem
and keeps the provider's message; its 401/403 and 402 concern CloudGPT's own
credential and credit, so the caller gets a 502/503 that says so, never a 401.

Time is bounded at every step: connecting, the first byte, every silence after
it, and the whole call (a `Deadline` that fits the function's `maxDuration`).
Transient failures (connection errors, 429, 500, 502, 503, 504) are retried with
jittered exponential backoff, but only here, before any byte reached the caller.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from lib import transport
from lib.errors import (
    BadRequest,
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from lib.settings import settings

_MESSAGE_LIMIT = 500
_ERROR_BODY_LIMIT = 64 * 1024
_ANSWER_LIMIT = 64 * 1024 * 1024
_RETRY_AFTER_LIMIT = 60  # the longest Retry-After passed on to a caller
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Deadline:
    """The moment (on the monotonic clock) by which a whole upstream call must be over."""

    at: float

    @classmethod
    def start(cls, seconds: float | None = None) -> Deadline:
        """A deadline `seconds` from now; by default the `UPSTREAM_DEADLINE` setting."""
        return cls(time.monotonic() + (settings().upstream_deadline if seconds is None else seconds))

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())


@contextmanager
def _transport_errors(timed_out: str, broken: str, code: str) -> Iterator[None]:
    """Turn the connection's failures inside the block into gateway errors."""
    try:
        yield
    except transport.ReadTimeout:
        raise UpstreamTimeout(timed_out) from None
    except transport.ProtocolError:
        raise UpstreamError(broken, code="upstream_malformed") from None
    except transport.TransportError:
        raise UpstreamError(broken, code=code) from None


@cache
def pool() -> transport.Pool:
    """The process's keep-alive connections, kept by warm instances between requests."""
    return transport.Pool(user_agent="CloudGPT")


def open_response(
    provider: str,
    method: str,
    url: str,
    *,
    api_key: str | None,
    json_body: Any = None,
    deadline: Deadline | None = None,
    retries: int | None = None,
    first_byte: float | None = None,
    addresses: Sequence[transport.Address] | None = None,
) -> transport.Response:
    """Send a request, retrying transient failures, and return the open response once it is a success.

    The caller reads the body (`chunks()` bounds each read in time) and must close
    the response. Every failure is a GatewayError; a failure that survived its
    retries carries the last attempt's mapping. `retries` (default
    `UPSTREAM_RETRIES`) is 0 for a request that must not be sent twice; `first_byte`
    (default `UPSTREAM_FIRST_BYTE_TIMEOUT`) is longer for a provider known to answer
    only once its work is done; `addresses` pins the connection to addresses checked
    beforehand (see lib.links).
    """
    current = settings()
    deadline = deadline or Deadline.start()
    retries = current.upstream_retries if retries is None else min(retries, current.upstream_retries)
    headers = {"Accept": "application/json, text/event-stream, */*"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = None
    if json_body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    for attempt in range(retries + 1):
        left = deadline.left()
        if left <= 0:
            raise UpstreamTimeout(f"{provider} was not tried: the gateway's time limit has passed.")
        try:
            return _checked(
                provider,
                _send(provider, method, url, headers, body, left, first_byte, addresses),
                api_key,
                deadline,
            )
        except _Retryable as failure:
            pause = failure.pause if failure.pause is not None else _backoff(attempt)
            if attempt == retries or pause >= deadline.left():
                raise failure.error from None
            time.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")


class _Retryable(Exception):
    """An attempt that failed in a way the next attempt may not; `pause` is the provider's wish."""

    def __init__(self, error: GatewayError, pause: float | None = None) -> None:
        self.error = error
        self.pause = pause


def _send(
    provider: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    left: float,
    first_byte: float | None,
    addresses: Sequence[transport.Address] | None,
) -> transport.Response:
    """One attempt, up to the answer's headers; the connection's failures mapped, retryable or not."""
    current = settings()
    try:
        return pool().request(
            method,
            url,
            headers=headers,
            body=body,
            connect_timeout=min(current.upstream_connect_timeout, left),
            write_timeout=min(30.0, left),
            first_byte_timeout=min(first_byte or current.upstream_first_byte_timeout, left),
            addresses=addresses,
        )
    except transport.ConnectTimeout:
        raise _Retryable(UpstreamTimeout(f"{provider} could not be reached in time.")) from None
    except transport.ReadTimeout:
        # A provider that accepted the request but stays silent is slow, not gone: no retry.
        raise UpstreamTimeout(f"{provider} did not answer in time.") from None
    except transport.ProtocolError:
        raise UpstreamError(
            f"{provider} answered in a form CloudGPT cannot read.", code="upstream_malformed"
        ) from None
    except transport.TransportError:
        raise _Retryable(
            UpstreamError(f"{provider} could not be reached.", code="upstream_unreachable")
        ) from None


def _checked(
    provider: str, response: transport.Response, api_key: str | None, deadline: Deadline
) -> transport.Response:
    """The response if it is a success; else it is closed and its failure raised, retryable or not."""
    if response.status_code < 400:
        return response
    try:
        failure = _failure(provider, response, _read_error_body(response, deadline), api_key)
    finally:
        response.close()
    if response.status_code not in _RETRIED_STATUSES:
        raise failure
    if response.status_code == 429 and "Retry-After" in response.headers:
        wanted = _retry_after(response)
        # Coming back before the provider's Retry-After only earns another 429.
        raise _Retryable(
            failure, pause=wanted if wanted <= settings().upstream_retry_after_cap else float("inf")
        )
    raise _Retryable(failure)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so retries from many callers do not arrive together."""
    base = settings().upstream_backoff * 2**attempt
    return base / 2 + random.uniform(0, base / 2)


def chunks(
    provider: str,
    response: transport.Response,
    deadline: Deadline,
    *,
    keepalive: float | None = None,
) -> Iterator[bytes | None]:
    """The open response's body as it arrives, each wait bounded; `None` marks a keep-alive tick.

    Before the first byte the wait is bounded by `UPSTREAM_FIRST_BYTE_TIMEOUT`, after
    it every silence by `UPSTREAM_READ_TIMEOUT`, and everything by `deadline`. With
    `keepalive`, `None` is yielded each time that many seconds pass before the first
    byte, so a stream can tell the caller it is still waiting, without a thread.
    The response is not closed here.
    """
    current = settings()
    first = True
    last = time.monotonic()
    with _transport_errors(
        f"{provider} went silent mid-answer.", f"{provider} cut its answer off.", code="upstream_stream_cut"
    ):
        while True:
            limit = current.upstream_first_byte_timeout if first else current.upstream_read_timeout
            silent_until = last + limit
            until = min(silent_until, deadline.at)
            while True:
                now = time.monotonic()
                if now >= until:
                    raise _timeout(provider, first, past_deadline=until < silent_until)
                tick = keepalive if first and keepalive else float("inf")
                try:
                    chunk = response.read(min(until - now, tick))
                    break
                except transport.ReadTimeout:
                    if tick < until - now:
                        yield None  # a wait for the first byte has lasted another `keepalive` seconds
            if not chunk:
                return
            first = False
            last = time.monotonic()
            yield chunk


def _timeout(provider: str, first: bool, *, past_deadline: bool) -> UpstreamTimeout:
    if past_deadline:
        return UpstreamTimeout(f"{provider} did not finish within the gateway's time limit.")
    if first:
        return UpstreamTimeout(f"{provider} did not start answering in time.")
    return UpstreamTimeout(f"{provider} went silent mid-answer.")


def read_body(provider: str, response: transport.Response, deadline: Deadline) -> bytes:
    """The whole body of a JSON answer, bounded in time and size; closes the response.

    A JSON answer may carry an image as base64, hence the generous `_ANSWER_LIMIT`;
    past it, it is not an answer CloudGPT can use.
    """
    body = bytearray()
    try:
        for chunk in chunks(provider, response, deadline):
            body += chunk or b""
            if len(body) > _ANSWER_LIMIT:
                raise UpstreamError(f"{provider}'s answer is too large.", code="upstream_malformed")
    finally:
        response.close()
    return bytes(body)


def _read_error_body(response: transport.Response, deadline: Deadline) -> bytes:
    """Up to `_ERROR_BODY_LIMIT` bytes of an error answer, for its message; whatever came in time."""
    body = b""
    until = min(time.monotonic() + settings().upstream_read_timeout, deadline.at)
    try:
        while len(body) < _ERROR_BODY_LIMIT and (chunk := response.read(until - time.monotonic())):
            body += chunk
    except transport.TransportError:
        pass
    return body[:_ERROR_BODY_LIMIT]


def parse_json(raw: bytes | str) -> Any:
    """A provider's JSON, or None when it is not JSON or nests too deeply to parse."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _upstream_message(body: bytes, api_key: str | None) -> str:
    """The provider's own error message, short, and with our credential blotted out."""
    text = body.decode("utf-8", "replace")
    data = parse_json(text)
    error = data.get("error", data) if isinstance(data, dict) else data
    message = error.get("message") if isinstance(error, dict) else error
    text = message if isinstance(message, str) else text
    if api_key:
        text = text.replace(api_key, "[redacted]")
    text = " ".join(text.split())
    return text[:_MESSAGE_LIMIT] or "no details given"


def _failure(provider: str, response: transport.Response, body: bytes, api_key: str | None) -> GatewayError:
    """The error the caller sees for a provider's error status."""
    status = response.status_code
    if status in (400, 413, 422):
        return BadRequest(
            f"{provider} rejected the request: {_upstream_message(body, api_key)}",
            code="upstream_bad_request",
        )
    if status in (401, 403):
        return UpstreamError(
            f"{provider} refused CloudGPT's credentials; the gateway's operator must fix its "
            f"{provider.upper()}_API_KEY.",
            code="upstream_auth_failed",
        )
    if status == 402:
        return ServiceUnavailable(
            f"CloudGPT's {provider} account is out of credit.", code="upstream_out_of_credit"
        )
    if status == 429:
        return RateLimited(
            f"{provider} is rate limiting CloudGPT; retry shortly.",
            code="upstream_rate_limited",
            headers={"Retry-After": str(min(_retry_after(response), _RETRY_AFTER_LIMIT))},
        )
    return UpstreamError(f"{provider} failed with HTTP {status}.", code="upstream_error")


def _retry_after(response: transport.Response) -> int:
    """The provider's Retry-After in whole seconds: at least 1 (when missing, a date or NaN), at most a day."""
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    if math.isnan(seconds):
        seconds = 1.0
    return int(min(max(seconds, 1.0), 86400.0))
