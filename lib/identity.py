"""Who is calling: an anonymous client (by IP) or a user (by API key).

An `Authorization` header that cannot be verified is a 401, never a quiet fall
back to anonymous: a caller who sent a key wants it used, and must learn when it
does not work.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.errors import AuthenticationError
from lib.settings import settings
from lib.web import Request


@dataclass(frozen=True)
class Caller:
    """Whose budget a request counts against."""

    kind: str  # "anonymous" or "user"
    id: str  # client IP or user id

    @property
    def authenticated(self) -> bool:
        return self.kind == "user"

    @property
    def bucket(self) -> str:
        """The rate-limit key: users across all their keys, anonymous callers per IP."""
        return f"{self.kind}:{self.id}"


def client_ip(request: Request) -> str:
    """The client's address, from the platform's own headers on Vercel, else the socket.

    Vercel sets `x-real-ip` and overwrites `x-forwarded-for`; anywhere else those
    headers come from the client and would let it pick its own rate-limit bucket.
    """
    if settings().on_vercel:
        real_ip = (request.header("X-Real-Ip") or "").strip()
        if real_ip:
            return real_ip
        forwarded = (request.header("X-Forwarded-For") or "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.remote_addr


def identify(request: Request) -> Caller:
    """The caller of a chat, image or video request."""
    authorization = request.header("Authorization")
    if authorization is None:
        return Caller("anonymous", client_ip(request))
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "Authorization must be 'Bearer <api key>'; omit the header to call anonymously.",
            code="invalid_authorization",
        )
    raise AuthenticationError("Invalid API key.", code="invalid_api_key")
