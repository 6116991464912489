"""Supabase's HTTP surface that CloudGPT uses, in front of a real PostgreSQL (tests only).

- Supabase's API gateway in front of both (`gateway_refusal`), as Supabase's "API keys"
  guide states it: every request carries a project key in `apikey`: the publishable
  (`sb_publishable_...`) or a secret key (`sb_secret_...`), or while the project keeps
  them, the legacy JWT `anon` and `service_role` keys (`legacy_keys = False` disables
  them: "Legacy API keys are disabled"). A secret key from a browser (a `User-Agent`
  starting `Mozilla/`, which every browser sends) is a 401. An `sb_` key may also ride
  in `Authorization: Bearer` only when it equals `apikey` (the SDKs send it so), and it
  then stands for the key's role, not for a user; any other `sb_` bearer is a 401.
- `POST /rest/v1/rpc/<function>`, as PostgREST serves it behind that gateway:
  `Authorization: Bearer <JWT>` (HS256 with the project's JWT secret, or RS256/ES256
  with a key of its JWKS) picks the database role from the `role` claim, the project
  key's role without it; the JSON body's keys are the function's named arguments; the call
  runs in one transaction as that role with `request.jwt.claims` set; the answer is
  the scalar result, or an array of rows for set-returning functions; failures come
  back in PostgREST's error shape (`code`, `message`, `details`, `hint`) with the
  HTTP status PostgREST's documentation gives for each SQLSTATE.
- `GET /auth/v1/.well-known/jwks.json`: the project's public signing keys; with
  `signing_key` set (a private key and its `kid`), Auth signs access tokens ES256 with
  it, as a project on asymmetric signing keys does; HS256 with the JWT secret otherwise.
- The rest of `/auth/v1`: Supabase Auth, as tests/fakes/supabase_auth.py emulates it (`auth`).

Every request is recorded so tests can see exactly what crossed the wire, and a
test can make every rpc answer a body of its choosing (`answer_with`).
"""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import psycopg
from psycopg import sql

from tests.fakes.server import FakeHandler, LoopbackFake
from tests.fakes.supabase_auth import SupabaseAuth
from tests.postgres import Postgres

_EXACT_STATUS = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "53400": 500,
    "P0001": 400,
    "42883": 404,
    "42P01": 404,
}
_CLASS_STATUS = {
    "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500,
    "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500,
    "F0": 500, "HV": 500, "P0": 500, "XX": 500,
}  # fmt: skip


def status_for(sqlstate: str, role: str) -> int:
    """PostgREST's HTTP status for a PostgreSQL error."""
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    return _EXACT_STATUS.get(sqlstate) or _CLASS_STATUS.get(sqlstate[:2], 400)


def error_body(code: str, message: str, details: str | None = None, hint: str | None = None) -> dict:
    return {"code": code, "details": details, "hint": hint, "message": message}


BROWSER_AGENT = "Mozilla/"  # how Supabase's gateway tells a browser: every browser's User-Agent starts so


def gateway_error(message: str, hint: str | None = None) -> dict:
    """A refusal in the gateway's own shape (not PostgREST's, not Auth's)."""
    return {"message": message} | ({"hint": hint} if hint else {})


class FakeSupabase(LoopbackFake):
    def __init__(
        self,
        database: Postgres,
        jwt_secret: str,
        jwks: dict | None = None,
        *,
        signing_key: tuple[Any, str] | None = None,
        legacy_keys: bool = True,
    ) -> None:
        self.database = database
        self.jwt_secret = jwt_secret
        self.jwks = jwks or {"keys": []}
        self.signing_key = signing_key  # (private key, kid): Auth's ES256 signing key; None: HS256
        self.legacy_keys = legacy_keys  # the JWT anon and service_role keys still accepted
        self.anon_key = self.token("anon")
        self.service_role_key = self.token("service_role")
        self.publishable_key = f"sb_publishable_{secrets.token_urlsafe(22)}"
        self.secret_key = f"sb_secret_{secrets.token_urlsafe(22)}"
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.jwks_fetches = 0
        self._schema_cache: dict[str, list[tuple]] = {}
        self.delay = 0.0  # seconds each rpc call waits first: a slow database
        self.answer: tuple[int, bytes] | None = None  # every rpc's status and raw body, when set
        self._connections: queue.Queue[psycopg.Connection] = queue.Queue()
        super().__init__(_handler(self))
        self.auth = SupabaseAuth(self)
        self.site_url = self.url  # where mailed links lead without a redirect_to (Auth's SITE_URL)

    def token(self, role: str, **claims: Any) -> str:
        """A project key as Supabase issues them: a long-lived HS256 JWT naming a role."""
        return jwt.encode(
            {"role": role, "iss": "supabase", "iat": int(time.time()), **claims}, self.jwt_secret
        )

    def key_role(self, key: str | None) -> str | None:
        """The database role a project key stands for; None for no key of this project."""
        return {
            self.publishable_key: "anon",
            self.secret_key: "service_role",
            self.anon_key: "anon",
            self.service_role_key: "service_role",
        }.get(key or "")

    def gateway_refusal(self, headers: Any) -> dict | None:
        """The gateway's 401 body for a request it turns away, None for one it lets through."""
        apikey = headers.get("apikey")
        if not apikey:
            return gateway_error(
                "No API key found in request", "No `apikey` request header or url param was found."
            )
        role = self.key_role(apikey)
        if role is None:
            return gateway_error(
                "Invalid API key", "Double check your Supabase `anon` or `service_role` API key."
            )
        legacy = apikey in (self.anon_key, self.service_role_key)
        if legacy and not self.legacy_keys:
            return gateway_error(
                "Legacy API keys are disabled",
                "Your legacy API keys (anon, service_role) were disabled; use the publishable and secret API keys.",
            )
        if role == "service_role" and not legacy and headers.get("User-Agent", "").startswith(BROWSER_AGENT):
            return gateway_error(
                "Forbidden use of secret API key in browser",
                "Secret API keys can only be used in a protected environment and should never be used in a "
                "browser. Use the publishable key instead.",
            )
        bearer = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if bearer.startswith("sb_") and bearer != apikey:
            return gateway_error(
                "Invalid API key", "An `sb_` key in Authorization must equal the `apikey` header."
            )
        return None

    def bearer_token(self, headers: Any) -> str | None:
        """The JWT the request carries in Authorization; None when none, or when it is the `sb_` project
        key (which the gateway already checked equals `apikey`)."""
        bearer = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return bearer if bearer and not bearer.startswith("sb_") else None

    def verify_jwt(self, token: str, audience: str | None = None) -> dict:
        """A user's (or a legacy key's) JWT, verified as PostgREST and Auth do; PyJWT's errors otherwise."""
        header = jwt.get_unverified_header(token)
        key: Any = self.jwt_secret
        if header.get("alg") in ("RS256", "ES256"):
            jwk = next((k for k in self.jwks["keys"] if k.get("kid") == header.get("kid")), None)
            if jwk is None:
                raise jwt.InvalidKeyError("no signing key with that kid")
            key = jwt.PyJWK(jwk).key
        return jwt.decode(
            token,
            key,
            algorithms=[str(header.get("alg"))] if header.get("alg") in ("HS256", "RS256", "ES256") else [],
            audience=audience,
            options={"verify_aud": audience is not None},
        )

    def sign(self, claims: dict) -> str:
        """An access token as the project's Auth signs it."""
        if self.signing_key is None:
            return jwt.encode(claims, self.jwt_secret, algorithm="HS256")
        private, kid = self.signing_key
        return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})

    @contextmanager
    def answer_with(self, status: int, body: bytes) -> Iterator[None]:
        """Answer every rpc with this status and raw JSON body (a proxy's or a broken store's) until the block ends."""
        self.answer = (status, body)
        try:
            yield
        finally:
            self.answer = None

    def rpc_calls(self, function: str) -> int:
        """How many calls of `function` were received so far."""
        return sum(path == f"/rest/v1/rpc/{function}" for path, _, _ in self.requests)

    def start(self, pool_size: int = 10) -> FakeSupabase:
        for _ in range(pool_size):
            self._connections.put(psycopg.connect(self.database.dsn("authenticator")))
        return super().start()

    def stop(self) -> None:
        super().stop()
        while not self._connections.empty():
            self._connections.get().close()

    def call(self, function: str, args: dict[str, Any], role: str, claims: dict) -> tuple[int, Any]:
        """Run one rpc the way PostgREST does; (status, JSON body)."""
        db = self._connections.get()  # a bounded pool, like PostgREST's: callers queue for a connection
        try:
            return self._call(db, function, args, role, claims)
        finally:
            db.rollback()
            self._connections.put(db)

    def _overloads(self, db: psycopg.Connection, function: str) -> list[tuple]:
        """The function's overloads: (input names, returns a set, return type kind, input types).

        Read once per function, as PostgREST reads its schema cache once.
        """
        if function not in self._schema_cache:
            self._schema_cache[function] = db.execute(
                # input arguments only: a `returns table` function lists its columns as arguments too
                "select array(select a.n from unnest(p.proargnames, coalesce(p.proargmodes::text[], "
                "array_fill('i'::text, array[cardinality(p.proargnames)]))) a(n, m) where a.m in ('i', 'b', 'v')), "
                "p.proretset, t.typtype, array(select format_type(unnest(p.proargtypes), null)) "
                "from pg_proc p join pg_type t on t.oid = p.prorettype "
                "where p.pronamespace = 'public'::regnamespace and p.proname = %s",
                (function,),
            ).fetchall()
            db.commit()
        return self._schema_cache[function]

    def _call(
        self, db: psycopg.Connection, function: str, args: dict, role: str, claims: dict
    ) -> tuple[int, Any]:
        overloads = self._overloads(db, function)
        match = next(
            ((names, s, t, types) for names, s, t, types in overloads if set(names or []) == set(args)), None
        )
        if match is None:
            signature = ", ".join(sorted(args))
            return 404, error_body(
                "PGRST202",
                f"Could not find the function public.{function}({signature}) in the schema cache",
                f"Searched for the function public.{function} with parameters {signature} or with a single "
                "unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            )
        names, returns_set, return_kind, types = match
        call = sql.SQL("{}({})").format(
            sql.Identifier("public", function),
            sql.SQL(", ").join(
                sql.SQL("{} := {}::{}").format(sql.Identifier(n), sql.Placeholder(), sql.SQL(t))
                for n, t in zip(names, types, strict=True)
            ),
        )
        if returns_set or return_kind == "c":
            query = sql.SQL("select coalesce(json_agg(r), '[]') from {} r").format(call)
        else:
            query = sql.SQL("select to_json({})").format(call)
        try:
            db.execute(  # as PostgREST does: the role and the claims, for this transaction only
                "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                (role, json.dumps(claims)),
            )
            (result,) = db.execute(query, [_arg(args[n]) for n in names]).fetchone()
            db.commit()
        except psycopg.Error as error:
            diag = error.diag
            state = error.sqlstate or "XX000"
            return status_for(state, role), error_body(
                state, diag.message_primary or str(error), diag.message_detail, diag.message_hint
            )
        if not returns_set and return_kind == "c":
            result = result[0] if result else None
        return 200, result


def _arg(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _handler(fake: FakeSupabase) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def _send(self, status: int, body: Any) -> None:
            self.send_json(status, body, content_type="application/json; charset=utf-8")

        def do_GET(self) -> None:
            if self.path == "/auth/v1/.well-known/jwks.json":
                fake.jwks_fetches += 1
                self._send(200, fake.jwks)
            elif self.path.startswith(("/auth/v1/", "/_provider/")):  # Auth, and its OAuth provider
                fake.auth.serve(self)
            else:
                self._send(404, {"message": "no Route matched with those values"})

        def do_PUT(self) -> None:
            if self.path.startswith("/auth/v1/"):
                return fake.auth.serve(self)
            self._send(404, {"message": "no Route matched with those values"})

        do_OPTIONS = do_PUT  # only Auth answers a preflight: PostgREST is called by the gateway, not a page

        def do_POST(self) -> None:
            if self.path.startswith("/auth/v1/"):
                return fake.auth.serve(self)
            body = self.read_body()
            fake.requests.append((self.path, dict(self.headers), body))
            if not self.path.startswith("/rest/v1/rpc/"):
                return self._send(404, {"message": "no Route matched with those values"})
            refusal = fake.gateway_refusal(self.headers)
            if refusal is not None:
                return self._send(401, refusal)
            token = fake.bearer_token(self.headers)
            try:  # no user token: the project key's role
                claims = fake.verify_jwt(token) if token else {"role": fake.key_role(self.headers["apikey"])}
            except jwt.ExpiredSignatureError:
                return self._send(401, error_body("PGRST303", "JWT expired"))
            except jwt.PyJWTError as error:
                return self._send(401, error_body("PGRST301", str(error)))
            try:
                args = json.loads(body or b"{}")
            except ValueError:
                return self._send(400, error_body("PGRST102", "Empty or invalid json"))
            if not isinstance(args, dict):
                return self._send(400, error_body("PGRST102", "Empty or invalid json"))
            time.sleep(fake.delay)
            if fake.answer is not None:
                status, raw = fake.answer
                return self.send(status, raw, "application/json; charset=utf-8")
            status, result = fake.call(
                self.path.removeprefix("/rest/v1/rpc/"), args, claims.get("role", "anon"), claims
            )
            self._send(status, result)

    return Handler
