"""Who is calling: an anonymous client (by address) or a user (by API key or account token).

An `Authorization` header that cannot be verified is a 401, never a quiet fall
back to anonymous: a caller who sent a key wants it used, and must learn when it
does not work. Keys the store refuses are counted against the sender's address
before the store is asked again (`lib.limits.check_failed_auth`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from lib import keys
from lib.errors import AuthenticationError, PermissionDenied
from lib.limits import check_failed_auth, record_failed_auth
from lib.settings import settings
from lib.web import Request

UNPARSABLE = "unparsable"  # the one bucket of every client address that is not an IP address


@dataclass(frozen=True)
class Caller:
    """Whose budget a request counts against."""

    kind: str  # "anonymous" or "user"
    id: str  # client address bucket or user id
    key_id: str | None = None  # the API key a user called with

    @property
    def authenticated(self) -> bool:
        return self.kind == "user"

    @property
    def bucket(self) -> str:
        """The rate-limit key: users across all their keys, anonymous callers per address."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Account:
    """The signed-in user of an account session (a Supabase Auth access token)."""

    user: str
    anonymous: bool  # a Supabase anonymous sign-in: no email, no password, anyone can have one


def client_ip(request: Request) -> str:
    """The client's address: on Vercel the one its runtime derives, else the socket's.

    Vercel's runtime sets `REMOTE_ADDR` from the exact header `x-forwarded-for`, which
    the platform overwrites. Every other header reaches the environ as `HTTP_` + its
    name upper-cased with `-` turned into `_`, the last copy winning, so a client
    sending `X_Real_Ip` would write `HTTP_X_REAL_IP`: no `HTTP_*` header is trusted.
    """
    address = request.remote_addr
    if settings().on_vercel:
        address = address.split(",")[0]
    return address.strip()


# The same addresses call again and again, and parsing one costs more than the rest of identify().
@lru_cache(maxsize=4096)
def address_bucket(address: str) -> str:
    """Whose budget an address counts against: IPv4 per address, IPv6 per /64 prefix.

    One home or phone has a whole /64 and can rotate addresses within it. An
    IPv4-mapped IPv6 address counts as its IPv4 address; anything that is not an
    address shares one bucket, so garbage cannot mint fresh budgets.
    """
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return UNPARSABLE
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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


def _verify_key(request: Request, key: str) -> keys.VerifiedKey:
    """The key's owner; a key the store refuses counts against the sender's address."""
    address = address_bucket(client_ip(request))
    return keys.verify(
        key, before_store=lambda: check_failed_auth(address), refused=lambda: record_failed_auth(address)
    )


def _is_jwt(token: str) -> bool:
    """An access token's shape (a JWS in compact form: `eyJ...` and three parts): anything else is a key."""
    return token.startswith("eyJ") and token.count(".") == 2


def identify(request: Request) -> Caller:
    """The caller of a chat, image or video request: anonymous, the owner of a valid key, or a signed-in user.

    A signed-in user's access token (what the playground sends) counts as that user,
    with no key: the token can mint keys anyway, so taking it here grants nothing more.
    An anonymous sign-in stays anonymous, counted by address.
    """
    token = _bearer(request)
    if token is None:
        return Caller("anonymous", address_bucket(client_ip(request)))
    if _is_jwt(token):
        account = _account(token)
        if account.anonymous:
            return Caller("anonymous", address_bucket(client_ip(request)))
        return Caller("user", account.user)
    found = _verify_key(request, token)
    return Caller("user", found.user, found.key_id)


def bearer_token(request: Request, missing: str) -> str:
    """The request's bearer token, or a 401 `missing_credentials` saying `missing`."""
    token = _bearer(request)
    if token is None:
        raise AuthenticationError(missing, code="missing_credentials")
    return token


def account_holder(request: Request) -> str:
    """The user managing keys or reading usage: from a Supabase Auth access token, or one of their keys."""
    token = bearer_token(
        request, "Your keys and usage need 'Authorization: Bearer <access token or API key>'."
    )
    if token.startswith(keys.PREFIX):
        return _verify_key(request, token).user
    return _account(token).user


def account_session(request: Request) -> Account:
    """The signed-in user changing their account (creating, deleting keys): an access token only.

    An API key is refused here: a leaked key must not mint keys that outlive its
    revocation, nor revoke its owner's others. Anonymous sign-ins get no keys.
    """
    token = bearer_token(
        request, "This route needs 'Authorization: Bearer <access token>' from a Supabase Auth sign-in."
    )
    if token.startswith(keys.PREFIX):
        raise PermissionDenied(
            "Creating and deleting API keys needs an account session (a Supabase Auth access token), "
            "not an API key.",
            code="account_session_required",
        )
    account = _account(token)
    if account.anonymous:
        raise PermissionDenied(
            "Anonymous sign-ins cannot have API keys; sign in with an account first.",
            code="anonymous_account",
        )
    return account


def _account(token: str) -> Account:
    from lib.accounts import verify_token

    user, anonymous = verify_token(token)
    return Account(user, anonymous)
