"""One exception hierarchy: every failure a caller can see is a GatewayError.

Each class fixes the HTTP status and the envelope's `type`; the raiser names the
`code` and writes the message. The web layer turns any of them into
`{"error": {"message", "type", "code", "param"}}`.
"""

from __future__ import annotations


class GatewayError(Exception):
    """An error answered to the caller in the error envelope."""

    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def envelope(self, request_id: str | None = None) -> dict[str, object]:
        """The error as the caller gets it; with the request's id when it is known, to quote."""
        error: dict[str, object] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        if request_id is not None:
            error["requestId"] = request_id
        return {"error": error}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The credential is valid but not enough for this action."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    """The request's body did not arrive in time (local server)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class InternalError(GatewayError):
    """A bug of ours; the message never carries its details."""


class UpstreamError(GatewayError):
    """The provider answered, but not with something we can pass on."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    """A provider or backend cannot be used right now, or is not configured."""

    status = 503
    type = "api_error"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"
