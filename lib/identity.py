"""Who is calling: an anonymous client (by address) or a user (by API key or account token).

An `Authorization` header that cannot be verified is a 401, never a quiet fall
back to anonymous: a caller who sent a key wants it used, and must learn when it
does not work. Every lookup of a key in the store is counted against the
sender's address before it is made (`lib.limits.count_lookup`); a key that
verifies gives its count back.
"""

from __future__ import annotations

import ipaddress
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from lib import keys, signout
from lib.caller import Caller
from lib.counters import CountersUnavailable, Seen, counters
from lib.errors import AuthenticationError, PermissionDenied
from lib.keys.records import KeyStoreUnavailable
from lib.limits import count_lookup, give_back
from lib.settings import settings
from lib.web import Request

if TYPE_CHECKING:
    from lib.accounts import Account

UNPARSABLE = "unparsable"  # the one bucket of every client address that is not an IP address


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


def _verify_key(request: Request, key: str) -> Caller:
    """The key's owner and controls; a 401 for a key that is unknown, disabled or expired."""
    counted: list[str] = []  # the lookup's count against the sender's address, if the store was asked

    def before_store() -> None:
        counted.append(count_lookup(address_bucket(client_ip(request))))

    try:
        found = keys.verify(key, before_store=before_store)
    except KeyStoreUnavailable:
        give_back(counted)  # the store failed: the key was not refused
        raise
    now = time.time()
    if found.refusal(now) is not None and not counted:
        found = _confirmed(found)  # remembered as refused here: it may have been enabled or extended since
    refusal = found.refusal(now)
    if refusal is not None:
        raise refusal
    caller = Caller("user", found.user, found, refund=counted[0] if counted and counted[0] else None)
    request.environ["cloudgpt.caller"] = caller  # for enforce_account: the key's marker is read there
    return caller


def _confirmed(found: keys.VerifiedKey) -> keys.VerifiedKey:
    """The key again from the store if its marker shows a change since it was verified here."""
    try:
        (seen,) = counters(settings()).run([Seen(keys.marker(found.key_id))])
    except CountersUnavailable:
        return found
    return keys.reverify(found) if (seen or 0) > found.version else found


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
        account = _account(request, token)
        if account.anonymous:
            return Caller("anonymous", address_bucket(client_ip(request)))
        return request.environ["cloudgpt.caller"]
    return _verify_key(request, token)


def api_key_holder(request: Request) -> Caller:
    """The caller of a route about the key itself (GET /api/keys/current): an API key only."""
    return _verify_key(request, bearer_token(request, "This route needs 'Authorization: Bearer <api key>'."))


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
        return _verify_key(request, token).id
    return _account(request, token).user


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
    account = _account(request, token)
    if account.anonymous:
        raise PermissionDenied(
            "Anonymous sign-ins cannot have API keys; sign in with an account first.",
            code="anonymous_account",
        )
    return account


def _account(request: Request, token: str) -> Account:
    """The token's account; its caller is kept for the limits, which refuse a signed-out session."""
    from lib.accounts import verify_token

    account = verify_token(token)
    if account.session is not None and signout.is_ended(account.session):
        raise signout.refusal()  # seen signed out here: no store call
    request.environ["cloudgpt.caller"] = Caller(
        "user", account.user, session=account.session, session_expires=account.expires
    )
    return account
