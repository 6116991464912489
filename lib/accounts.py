"""Account access tokens: who is managing their keys, and how people sign in.

Tokens are verified here, without a call to Supabase: HS256 with the project's JWT
secret, or RS256/ES256 with the project's published signing keys (JWKS, fetched on
first use and kept for SUPABASE_JWKS_CACHE_SECONDS, so a key revoked in Supabase
stops being accepted within that time). The token's `alg` must be the algorithm of the
key it names. The signature, `exp`, `aud` = `authenticated` and, when
SUPABASE_URL is set, `iss` must all hold; the user is `sub`, `is_anonymous`
says whether it is an anonymous sign-in, and `session_id` names the session a
sign-out ends (`lib.signout`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.errors import AuthenticationError, ServiceUnavailable
from lib.instance import kept
from lib.settings import settings

if TYPE_CHECKING:
    import jwt

JWKS_TIMEOUT_SECONDS = 0.8
ASYMMETRIC = ("RS256", "ES256")


@dataclass(frozen=True)
class Account:
    """The signed-in user of an account session, from a valid access token."""

    user: str
    anonymous: bool  # a Supabase anonymous sign-in: no email, no password, anyone can have one
    session: str | None = None  # Supabase's `session_id`: what DELETE /api/session ends
    expires: int = 0  # the token's `exp`


def _invalid(reason: str) -> AuthenticationError:
    return AuthenticationError(f"Invalid access token: {reason}.", code="invalid_token")


def _jwks_client(url: str, lifespan: float) -> jwt.PyJWKClient:
    import jwt

    # The key set is cached for a bounded time; `cache_keys` would keep each key for the process's life.
    return kept(
        ("jwks", url, lifespan),
        lambda: jwt.PyJWKClient(url, cache_keys=False, lifespan=lifespan, timeout=JWKS_TIMEOUT_SECONDS),
    )


def _signing_key(token: str, algorithm: str) -> object:
    import jwt

    current = settings()
    if not supabase_tokens():
        raise ServiceUnavailable(
            "Access tokens cannot be verified: set SUPABASE_JWT_SECRET or SUPABASE_URL.",
            code="account_tokens_not_configured",
        )
    if algorithm == "HS256" and current.supabase_jwt_secret:
        return current.supabase_jwt_secret
    if algorithm in ASYMMETRIC and current.supabase_url:
        client = _jwks_client(
            f"{current.supabase_url}/auth/v1/.well-known/jwks.json", current.jwks_cache_seconds
        )
        try:
            signing_key = client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise ServiceUnavailable(
                "Supabase's signing keys cannot be fetched right now.", code="account_tokens_unavailable"
            ) from None
        except jwt.PyJWTError:
            raise _invalid("signed with an unknown key") from None
        if signing_key.algorithm_name != algorithm:  # e.g. RS256 naming an EC key
            raise _invalid(f"algorithm {algorithm!r} does not fit the key it names")
        return signing_key.key
    raise _invalid(f"algorithm {algorithm!r} is not accepted here")


def supabase_tokens() -> bool:
    """Whether Supabase Auth's access tokens can be verified here (its JWT secret or its URL is set)."""
    current = settings()
    return bool(current.supabase_jwt_secret or current.supabase_url)


def mode() -> str:
    """How people sign in: `supabase` (Supabase Auth), `local` (the embedded default) or `none`.

    `local` is the one-time links of `lib.local_signin`: never on Vercel, never beside Supabase.
    """
    current = settings()
    if current.supabase_url:
        return "supabase" if current.supabase_anon_key else "none"
    return "none" if current.on_vercel else "local"


def verify_token(token: str) -> Account:
    """The account of a valid access token (its user, whether anonymous, its session), or a 401.

    Supabase Auth's tokens always; in local mode, also the local server's own (`lib.local_signin`).
    """
    import jwt

    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise _invalid("not a JWT") from None
    local = None
    if mode() == "local":
        from lib import local_signin  # only where sign-in is local; it imports nothing from here

        local = local_signin if issuer == local_signin.ISSUER else None
    try:
        claims = local.verify(token) if local else _supabase_claims(token, str(algorithm))
    except jwt.ExpiredSignatureError:
        raise _invalid("expired") from None
    except jwt.InvalidAudienceError:
        raise _invalid("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise _invalid("wrong issuer") from None
    except (jwt.PyJWTError, ValueError, TypeError):  # a key the library cannot use for this token
        raise _invalid("bad signature or claims") from None
    try:
        user = str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise _invalid("its subject is not a user id") from None
    # Anything but an absent or false `is_anonymous` is taken as anonymous: the safe side.
    anonymous = claims.get("is_anonymous") not in (None, False)
    session = claims.get("session_id") if local is None else None  # a local session ends in local_signin
    return Account(user, anonymous, str(session) if session else None, int(claims["exp"]))


def sign_out(token: str) -> None:
    """End the token's session: a local one in `lib.local_signin`, a Supabase one by its marker (`lib.signout`).

    A 401 for a token that does not verify, or a Supabase token naming no session.
    """
    import jwt

    if mode() == "local":
        from lib import local_signin

        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            issuer = None
        if issuer == local_signin.ISSUER or not supabase_tokens():
            local_signin.end_session(token)
            return
    account = verify_token(token)
    if account.session is None:
        raise _invalid("it names no session to end")
    from lib import signout

    signout.end(account.session, account.expires)  # 503 if the counters cannot be written


def _supabase_claims(token: str, algorithm: str) -> dict:
    import jwt

    key = _signing_key(token, algorithm)
    url = settings().supabase_url
    return jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        audience="authenticated",
        issuer=f"{url}/auth/v1" if url else None,
        options={"require": ["exp", "sub", "aud"]},
    )
