"""Calls to providers: one pooled HTTP client, bounded by timeouts, failures mapped.

A provider's failure is never passed through raw. Its 400 is the caller's problem
and keeps the provider's message; its 401/403 and 402 concern CloudGPT's own
credential and credit, so the caller gets a 502/503 that says so, never a 401.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import httpx

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
_RETRY_AFTER_CAP = 60


@contextmanager
def transport_errors(timed_out: str, broken: str, code: str) -> Iterator[None]:
    """Turn the HTTP client's network failures inside the block into gateway errors."""
    try:
        yield
    except httpx.TimeoutException:
        raise UpstreamTimeout(timed_out) from None
    except httpx.TransportError:
        raise UpstreamError(broken, code=code) from None


@cache
def client() -> httpx.Client:
    """The process's connection pool, kept by warm instances between requests."""
    current = settings()
    return httpx.Client(
        timeout=httpx.Timeout(
            connect=current.upstream_connect_timeout,
            read=current.upstream_read_timeout,
            write=30.0,
            pool=10.0,
        ),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        headers={"User-Agent": "CloudGPT"},
        follow_redirects=False,
    )


def open_response(
    provider: str, method: str, url: str, *, api_key: str | None, json_body: Any = None
) -> httpx.Response:
    """Send a request and return the open response once its status is a success.

    The caller reads (or streams) the body and must close the response.
    """
    headers = {"Accept": "application/json, text/event-stream, */*"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = client().build_request(method, url, json=json_body, headers=headers)
    with transport_errors(
        f"{provider} did not answer in time.", f"{provider} could not be reached.", "upstream_unreachable"
    ):
        response = client().send(request, stream=True)
    if response.status_code >= 400:
        try:
            raise _failure(provider, response, _read_error_body(response), api_key)
        finally:
            response.close()
    return response


def _read_error_body(response: httpx.Response) -> bytes:
    body = b""
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return body[:_ERROR_BODY_LIMIT]


def _upstream_message(body: bytes, api_key: str | None) -> str:
    """The provider's own error message, short, and with our credential blotted out."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else error
        text = message if isinstance(message, str) else text
    except ValueError:
        pass
    if api_key:
        text = text.replace(api_key, "[redacted]")
    text = " ".join(text.split())
    return text[:_MESSAGE_LIMIT] or "no details given"


def _failure(provider: str, response: httpx.Response, body: bytes, api_key: str | None) -> GatewayError:
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
            headers={"Retry-After": str(_retry_after(response))},
        )
    return UpstreamError(f"{provider} failed with HTTP {status}.", code="upstream_error")


def _retry_after(response: httpx.Response) -> int:
    try:
        seconds = int(float(response.headers.get("Retry-After", "1")))
    except ValueError:
        seconds = 1
    return min(max(seconds, 1), _RETRY_AFTER_CAP)
