"""Who is calling: an anonymous client (by IP) or a user (by API key or account token).

An `Authorization` header that cannot be verified is a 401, never a quiet fall
back to anonymous: a caller who sent a key wants it used, and must learn when it
does not work.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib import keys
from lib.errors import AuthenticationError
from lib.settings import settings
from lib.web import Request


@dataclass(frozen=True)
class Caller:
    """Whose budget a request counts against."""

    kind: str  # "anonymous" or "user"
    id: str  # client IP or user id
    key_id: str | None = None  # the API key a user called with

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


def _bearer(request: Request) -> str | None:
    authorization = request.header("Authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "Authorization must be 'Bearer <api key>'; omit the header to call anonymously.",
            code="invalid_authorization",
        )
    return token.strip()


def identify(request: Request) -> Caller:
    """The caller of a chat, image or video request: anonymous, or the owner of a valid key."""
    token = _bearer(request)
    if token is None:
        return Caller("anonymous", client_ip(request))
    found = keys.verify(token)
    return Caller("user", found.user, found.key_id)


def account_holder(request: Request) -> str:
    """The user managing keys or reading usage: from a Supabase Auth access token, or one of their keys."""
    token = _bearer(request)
    if token is None:
        raise AuthenticationError(
            "Your keys and usage need 'Authorization: Bearer <access token or API key>'.",
            code="missing_credentials",
        )
    if token.startswith(keys.PREFIX):
        return keys.verify(token).user
    from lib.accounts import verify_token

    return verify_token(token)
