"""Supabase Auth (GoTrue) as supabase-js v2 calls it, on the real PostgreSQL `auth` schema (tests only).

Served by FakeSupabase under `/auth/v1`, on the same base URL as PostgREST, so
SUPABASE_URL is one value. What it does is what GoTrue documents and does:

- `POST /signup {email, password, data}`: a user in `auth.users`, the password
  hashed with bcrypt (cost 10, as GoTrue). With email confirmation off (the
  default here, `confirm_email = False`) the answer is a session; with it on,
  the user, and a confirmation mail in `outbox`.
- `POST /token?grant_type=password {email, password}` and
  `?grant_type=refresh_token {refresh_token}` (rotation: a used refresh token is refused).
- `GET /user`, `PUT /user {password?, data?}` with the access token.
- `POST /logout?scope=global|local|others`: 204; the sessions are gone.
- `POST /recover {email}`, `POST /otp {email, create_user}`: `{}`, and a mail in
  `outbox` (none for an unknown address on recover: nothing leaks).
- `GET /verify?token&type&redirect_to`: the mail's link; a 303 to `redirect_to`
  with the session in the fragment (the implicit flow supabase-js uses by
  default), or with `error`/`error_code`/`error_description` when the link is bad.
- `GET /authorize?provider&redirect_to` (what `signInWithOAuth` opens): for a
  provider in `oauth_providers`, a 302 to the provider's consent page, which is
  played by this emulator at `/_provider/<name>/authorize` and sends the browser
  straight on to `GET /callback`, which signs in (or up) `oauth_email` and
  redirects to `redirect_to` as `/verify` does. Another provider is GoTrue's 400.

Access tokens are HS256 with the project's JWT secret, or ES256 with its signing
key when it has one (`FakeSupabase(signing_key=...)`): `aud` and `role`
authenticated, `iss` `<SUPABASE_URL>/auth/v1`, `sub` the user id, `session_id`,
`is_anonymous` false, one hour. Every request passes the project's API gateway
(`FakeSupabase.gateway_refusal`: a project key in `apikey`, no secret key from a
browser) but those the browser opens itself (`/verify`, `/authorize`, `/callback`). Errors
are GoTrue's: `{"code", "error_code", "msg"}`, or `{"code", "message"}` when the
request sends `X-Supabase-Api-Version: 2024-01-01` (supabase-js does). CORS is
open to any origin, as Supabase's gateway is.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import bcrypt
import jwt
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from tests.fakes.supabase import FakeSupabase

API_VERSION = "2024-01-01"
TOKEN_SECONDS = 3600
PASSWORD_MIN_LENGTH = 6
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, x-supabase-api-version",
    "Access-Control-Expose-Headers": "x-supabase-api-version",
    "Access-Control-Max-Age": "3600",
}


class AuthError(Exception):
    """A GoTrue HTTPError: status, error code, message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Mail:
    """A mail GoTrue would have sent: to whom, why (`signup`, `magiclink`, `recovery`), its link."""

    to: str
    type: str
    link: str


def _now() -> datetime:
    return datetime.now(UTC)


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SupabaseAuth:
    """The emulated Auth server of one FakeSupabase project."""

    def __init__(self, project: FakeSupabase) -> None:
        self.project = project
        self.confirm_email = False  # GoTrue's MAILER_AUTOCONFIRM inverted: off means sessions at sign-up
        self.outbox: list[Mail] = []
        self.oauth_providers = {"github"}  # enabled in the project's settings
        self.oauth_email = "octocat@example.com"  # who signs in at the provider's stand-in
        self._oauth: dict[str, tuple[str, str]] = {}  # state -> (provider, redirect_to)

    @property
    def issuer(self) -> str:
        return f"{self.project.url}/auth/v1"

    def mails_to(self, email: str) -> list[Mail]:
        return [mail for mail in self.outbox if mail.to == email.lower()]

    # -- HTTP ---------------------------------------------------------------------------------

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request to /auth/v1/...; `request` is the FakeSupabase handler."""
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query))
        route = (request.command, url.path.removeprefix("/auth/v1"))
        if url.path.startswith("/_provider/"):  # the OAuth provider's consent page, whichever provider
            route = (request.command, "/_provider")
        versioned = request.headers.get("X-Supabase-Api-Version") == API_VERSION
        headers = dict(CORS) | ({"X-Supabase-Api-Version": API_VERSION} if versioned else {})
        if request.command == "OPTIONS":
            return request.send(204, b"", "text/plain", headers)
        try:
            browser = {  # opened by the browser itself: no apikey, a redirect
                ("GET", "/verify"): lambda: (303, self.verify(query)),
                ("GET", "/authorize"): lambda: (302, self.authorize(query)),
                ("GET", "/_provider"): lambda: (302, self.consent(query)),
                ("GET", "/callback"): lambda: (303, self.callback(query)),
            }.get(route)
            if browser is not None:
                status, location = browser()
                return request.send(status, b"", "text/plain", headers | {"Location": location})
            refusal = self.project.gateway_refusal(request.headers)
            if refusal is not None:  # the gateway answers this itself, in its own shape
                return request.send_json(401, refusal, headers)
            body = self._body(request) if request.command in ("POST", "PUT") else {}
            handler = {
                ("POST", "/signup"): lambda: self.signup(body),
                ("POST", "/token"): lambda: self.token(query.get("grant_type", ""), body),
                ("GET", "/user"): lambda: self.user(self._session(request)),
                ("PUT", "/user"): lambda: self.update_user(self._session(request), body),
                ("POST", "/logout"): lambda: self.logout(
                    self._session(request), query.get("scope", "global")
                ),
                ("POST", "/recover"): lambda: self.recover(body, query.get("redirect_to")),
                ("POST", "/otp"): lambda: self.otp(body, query.get("redirect_to")),
            }.get(route)
            if handler is None:
                raise AuthError(404, "not_found", "Not Found")
            status, answer = handler()
        except AuthError as error:
            if versioned:
                answer = {"code": error.code, "message": error.message, **error.extra}
            else:
                answer = {"code": error.status, "error_code": error.code, "msg": error.message, **error.extra}
            return request.send_json(error.status, answer, headers)
        if status == 204:
            return request.send(204, b"", "text/plain", headers)
        request.send_json(status, answer, headers)

    @staticmethod
    def _body(request: BaseHTTPRequestHandler) -> dict[str, Any]:
        raw = request.read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise AuthError(400, "bad_json", "Could not parse request body as JSON") from None
        if not isinstance(body, dict):
            raise AuthError(400, "bad_json", "Could not parse request body as JSON")
        return body

    def _session(self, request: BaseHTTPRequestHandler) -> dict[str, Any]:
        """The claims of the request's access token, whose session must still exist."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            claims = self.project.verify_jwt(authorization[7:].strip(), audience="authenticated")
        except jwt.PyJWTError as error:
            raise AuthError(
                403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {error}"
            ) from None
        with self._db() as db:
            if not db.execute(
                "select 1 from auth.sessions where id = %s", (claims.get("session_id"),)
            ).fetchone():
                raise AuthError(
                    403, "session_not_found", "Session from session_id claim in JWT does not exist"
                )
        return claims

    def _db(self) -> psycopg.Connection:
        return psycopg.connect(self.project.database.dsn(), autocommit=True, row_factory=dict_row)

    # -- endpoints ----------------------------------------------------------------------------

    def signup(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        email, password = self._email(body.get("email")), body.get("password")
        if not isinstance(password, str) or not password:
            raise AuthError(422, "validation_failed", "Signup requires a valid password")
        self._strong(password)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        with self._db() as db:
            user = self._find(db, email)
            if user is not None and user["email_confirmed_at"] is not None:
                if not self.confirm_email:
                    raise AuthError(422, "user_already_exists", "User already registered")
                return 200, self._obfuscated(email, data)  # as GoTrue: nothing says the address is taken
            if user is None:
                user = db.execute(
                    "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
                    " raw_app_meta_data, raw_user_meta_data, created_at, updated_at)"
                    " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated',"
                    " %s, %s, %s, %s, now(), now()) returning *",
                    (
                        str(uuid.uuid4()),
                        email,
                        bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode(),
                        Jsonb({"provider": "email", "providers": ["email"]}),
                        Jsonb(data),
                    ),
                ).fetchone()
            if not self.confirm_email:
                user = self._confirm(db, user)
                return 200, self._new_session(db, user, "password")
            self._mail(db, user, "signup", "confirmation_token", body.get("redirect_to"))
            return 200, self._user_json(self._find(db, email))

    def token(self, grant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._db() as db:
            if grant == "password":
                user = self._find(db, self._email(body.get("email")))
                password = body.get("password")
                if (
                    user is None
                    or not isinstance(password, str)
                    or not user["encrypted_password"]
                    or not bcrypt.checkpw(password.encode(), user["encrypted_password"].encode())
                ):
                    raise AuthError(400, "invalid_credentials", "Invalid login credentials")
                if user["email_confirmed_at"] is None:
                    raise AuthError(400, "email_not_confirmed", "Email not confirmed")
                return 200, self._new_session(db, user, "password")
            if grant == "refresh_token":
                return 200, self._refresh(db, str(body.get("refresh_token") or ""))
        raise AuthError(400, "validation_failed", "unsupported_grant_type")

    def user(self, claims: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._db() as db:
            user = db.execute("select * from auth.users where id = %s", (claims["sub"],)).fetchone()
        if user is None:
            raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
        return 200, self._user_json(user)

    def update_user(self, claims: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._db() as db:
            if "password" in body:
                password = body["password"]
                if not isinstance(password, str):
                    raise AuthError(400, "validation_failed", "Password must be a string")
                self._strong(password)
                hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
                db.execute(
                    "update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
                    (hashed, claims["sub"]),
                )
            if isinstance(body.get("data"), dict):
                db.execute(
                    "update auth.users set raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || %s,"
                    " updated_at = now() where id = %s",
                    (Jsonb(body["data"]), claims["sub"]),
                )
        return self.user(claims)

    def logout(self, claims: dict[str, Any], scope: str) -> tuple[int, None]:
        if scope not in ("global", "local", "others"):
            raise AuthError(400, "validation_failed", "Unsupported logout scope")
        condition = {"global": "user_id = %s", "local": "id = %s", "others": "user_id = %s and id <> %s"}[
            scope
        ]
        args = {
            "global": (claims["sub"],),
            "local": (claims["session_id"],),
            "others": (claims["sub"], claims["session_id"]),
        }[scope]
        with self._db() as db:
            db.execute(f"delete from auth.sessions where {condition}", args)  # their refresh tokens cascade
        return 204, None

    def recover(self, body: dict[str, Any], redirect_to: str | None) -> tuple[int, dict[str, Any]]:
        email = self._email(body.get("email"))
        with self._db() as db:
            user = self._find(db, email)
            if user is not None:
                self._mail(db, user, "recovery", "recovery_token", redirect_to)
        return 200, {}

    def otp(self, body: dict[str, Any], redirect_to: str | None) -> tuple[int, dict[str, Any]]:
        email = self._email(body.get("email"))
        with self._db() as db:
            user = self._find(db, email)
            if user is None:
                if body.get("create_user", True) is False:
                    raise AuthError(422, "otp_disabled", "Signups not allowed for otp")
                user = db.execute(
                    "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,"
                    " raw_user_meta_data, created_at, updated_at) values"
                    " ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s, %s, %s,"
                    " now(), now()) returning *",
                    (
                        str(uuid.uuid4()),
                        email,
                        Jsonb({"provider": "email", "providers": ["email"]}),
                        Jsonb(body.get("data") if isinstance(body.get("data"), dict) else {}),
                    ),
                ).fetchone()
            kind = "magiclink" if user["email_confirmed_at"] is not None else "signup"
            self._mail(
                db, user, kind, "recovery_token" if kind == "magiclink" else "confirmation_token", redirect_to
            )
        return 200, {}

    def verify(self, query: dict[str, str]) -> str:
        """Where the mail's link sends the browser: the session in the fragment, or the error."""
        redirect_to = query.get("redirect_to") or self.project.site_url
        kind, token = query.get("type", ""), query.get("token", "")
        column = {"signup": "confirmation_token", "magiclink": "recovery_token", "recovery": "recovery_token"}
        with self._db() as db:
            user = None
            if kind in column and token:
                user = db.execute(
                    f"update auth.users set {column[kind]} = '' where {column[kind]} = %s"
                    f" and {column[kind].replace('token', 'sent_at')} > now() - interval '1 hour' returning *",
                    (_hash(token),),
                ).fetchone()
            if user is None:
                return (
                    redirect_to.split("#")[0]
                    + "#"
                    + urlencode(
                        {
                            "error": "access_denied",
                            "error_code": "otp_expired",
                            "error_description": "Email link is invalid or has expired",
                        }
                    )
                )
            user = self._confirm(db, user)
            session = self._new_session(db, user, "otp" if kind != "recovery" else "recovery")
        fragment = {
            k: session[k] for k in ("access_token", "expires_at", "expires_in", "refresh_token", "token_type")
        }
        return redirect_to.split("#")[0] + "#" + urlencode({**fragment, "type": kind})

    def authorize(self, query: dict[str, str]) -> str:
        provider = query.get("provider", "")
        if provider not in self.oauth_providers:
            raise AuthError(400, "validation_failed", "Unsupported provider: provider is not enabled")
        state = secrets.token_urlsafe(16)
        self._oauth[state] = (provider, query.get("redirect_to") or self.project.site_url)
        return f"{self.project.url}/_provider/{provider}/authorize?" + urlencode(
            {"redirect_uri": f"{self.issuer}/callback", "state": state}
        )

    def consent(self, query: dict[str, str]) -> str:
        """The provider's page: the person agrees at once, and is sent back with a code."""
        return f"{query.get('redirect_uri')}?" + urlencode(
            {"code": secrets.token_hex(8), "state": query.get("state", "")}
        )

    def callback(self, query: dict[str, str]) -> str:
        provider, redirect_to = self._oauth.pop(query.get("state", ""), (None, self.project.site_url))
        if provider is None or not query.get("code"):
            return (
                redirect_to.split("#")[0]
                + "#"
                + urlencode(
                    {
                        "error": "invalid_request",
                        "error_code": "bad_oauth_state",
                        "error_description": "OAuth state is invalid",
                    }
                )
            )
        with self._db() as db:
            user = (
                self._find(db, self.oauth_email)
                or db.execute(
                    "insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data,"
                    " raw_user_meta_data, created_at, updated_at) values"
                    " ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s, %s, '{}',"
                    " now(), now()) returning *",
                    (
                        str(uuid.uuid4()),
                        self.oauth_email,
                        Jsonb({"provider": provider, "providers": [provider]}),
                    ),
                ).fetchone()
            )
            session = self._new_session(db, self._confirm(db, user), "oauth")
        fragment = {
            k: session[k] for k in ("access_token", "expires_at", "expires_in", "refresh_token", "token_type")
        }
        return redirect_to.split("#")[0] + "#" + urlencode(fragment)

    # -- users, sessions, mails ---------------------------------------------------------------

    @staticmethod
    def _email(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise AuthError(400, "validation_failed", "An email address is required")
        email = value.strip().lower()
        if not _EMAIL.match(email) or len(email) > 255:
            raise AuthError(400, "email_address_invalid", "Unable to validate email address: invalid format")
        return email

    @staticmethod
    def _strong(password: str) -> None:
        if len(password) < PASSWORD_MIN_LENGTH:
            raise AuthError(
                422,
                "weak_password",
                f"Password should be at least {PASSWORD_MIN_LENGTH} characters.",
                weak_password={"reasons": ["length"]},
            )

    @staticmethod
    def _find(db: psycopg.Connection, email: str) -> dict[str, Any] | None:
        return db.execute("select * from auth.users where email = %s", (email,)).fetchone()

    @staticmethod
    def _confirm(db: psycopg.Connection, user: dict[str, Any]) -> dict[str, Any]:
        return db.execute(
            "update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now()"
            " where id = %s returning *",
            (user["id"],),
        ).fetchone()

    def _mail(
        self, db: psycopg.Connection, user: dict[str, Any], kind: str, column: str, redirect_to: str | None
    ) -> None:
        token = secrets.token_hex(28)
        db.execute(
            f"update auth.users set {column} = %s, {column.replace('token', 'sent_at')} = now() where id = %s",
            (_hash(token), user["id"]),
        )
        query = {"token": token, "type": kind, "redirect_to": redirect_to or self.project.site_url}
        self.outbox.append(Mail(user["email"], kind, f"{self.issuer}/verify?{urlencode(query)}"))

    def _obfuscated(self, email: str, data: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        return self._user_json(
            {
                "id": uuid.uuid4(),
                "email": email,
                "email_confirmed_at": None,
                "confirmation_sent_at": now,
                "recovery_sent_at": None,
                "last_sign_in_at": None,
                "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
                "raw_user_meta_data": data,
                "created_at": now,
                "updated_at": now,
                "is_anonymous": False,
            }
        )

    @staticmethod
    def _user_json(user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(user["id"]),
            "aud": "authenticated",
            "role": "authenticated",
            "email": user["email"],
            "email_confirmed_at": _time(user["email_confirmed_at"]),
            "phone": "",
            "confirmation_sent_at": _time(user.get("confirmation_sent_at")),
            "confirmed_at": _time(user["email_confirmed_at"]),
            "recovery_sent_at": _time(user.get("recovery_sent_at")),
            "last_sign_in_at": _time(user.get("last_sign_in_at")),
            "app_metadata": user["raw_app_meta_data"] or {},
            "user_metadata": user["raw_user_meta_data"] or {},
            "identities": [],
            "created_at": _time(user["created_at"]),
            "updated_at": _time(user["updated_at"]),
            "is_anonymous": bool(user["is_anonymous"]),
        }

    def _new_session(self, db: psycopg.Connection, user: dict[str, Any], method: str) -> dict[str, Any]:
        session_id = str(uuid.uuid4())
        db.execute(
            "insert into auth.sessions (id, user_id, created_at, updated_at, aal) values (%s, %s, now(), now(), 'aal1')",
            (session_id, user["id"]),
        )
        user = db.execute(
            "update auth.users set last_sign_in_at = now() where id = %s returning *", (user["id"],)
        ).fetchone()
        return self._tokens(db, user, session_id, method, parent=None)

    def _refresh(self, db: psycopg.Connection, refresh_token: str) -> dict[str, Any]:
        row = db.execute(
            "select r.*, s.id as live_session from auth.refresh_tokens r"
            " left join auth.sessions s on s.id = r.session_id where r.token = %s",
            (refresh_token,),
        ).fetchone()
        if row is None or row["live_session"] is None:
            raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        if row["revoked"]:
            raise AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
        db.execute(
            "update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s", (row["id"],)
        )
        user = db.execute("select * from auth.users where id = %s", (row["user_id"],)).fetchone()
        return self._tokens(db, user, str(row["session_id"]), "token_refresh", parent=refresh_token)

    def _tokens(
        self, db: psycopg.Connection, user: dict[str, Any], session_id: str, method: str, parent: str | None
    ) -> dict[str, Any]:
        now = int(time.time())
        refresh_token = secrets.token_urlsafe(9)  # GoTrue's are 12 characters
        db.execute(
            "insert into auth.refresh_tokens (token, user_id, revoked, session_id, parent, created_at, updated_at)"
            " values (%s, %s, false, %s, %s, now(), now())",
            (refresh_token, str(user["id"]), session_id, parent),
        )
        claims = {
            "iss": self.issuer,
            "sub": str(user["id"]),
            "aud": "authenticated",
            "exp": now + TOKEN_SECONDS,
            "iat": now,
            "email": user["email"],
            "phone": "",
            "app_metadata": user["raw_app_meta_data"] or {},
            "user_metadata": user["raw_user_meta_data"] or {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": method, "timestamp": now}],
            "session_id": session_id,
            "is_anonymous": False,
        }
        return {
            "access_token": self.project.sign(claims),
            "token_type": "bearer",
            "expires_in": TOKEN_SECONDS,
            "expires_at": now + TOKEN_SECONDS,
            "refresh_token": refresh_token,
            "user": self._user_json(user),
        }
