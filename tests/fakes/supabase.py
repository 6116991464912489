"""Supabase's HTTP surface that CloudGPT uses, in front of a real PostgreSQL (tests only).

- `POST /rest/v1/rpc/<function>`, as PostgREST serves it behind Supabase's gateway:
  the `apikey` header must be one of the project's keys; `Authorization: Bearer <JWT>`
  (HS256, the project's JWT secret) picks the database role from the `role` claim,
  anon without it; the JSON body's keys are the function's named arguments; the call
  runs in one transaction as that role with `request.jwt.claims` set; the answer is
  the scalar result, or an array of rows for set-returning functions; failures come
  back in PostgREST's error shape (`code`, `message`, `details`, `hint`) with the
  HTTP status PostgREST's documentation gives for each SQLSTATE.
- `GET /auth/v1/.well-known/jwks.json`: the project's public signing keys.
- The rest of `/auth/v1`: Supabase Auth, as tests/fakes/supabase_auth.py emulates it (`auth`).

Every request is recorded so tests can see exactly what crossed the wire, and a
test can make every rpc answer a body of its choosing (`answer_with`).
"""

from __future__ import annotations

import json
import queue
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


class FakeSupabase(LoopbackFake):
    def __init__(self, database: Postgres, jwt_secret: str, jwks: dict | None = None) -> None:
        self.database = database
        self.jwt_secret = jwt_secret
        self.jwks = jwks or {"keys": []}
        self.anon_key = self.token("anon")
        self.service_role_key = self.token("service_role")
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
            apikey = self.headers.get("apikey")
            if not apikey:
                return self._send(
                    401,
                    {
                        "message": "No API key found in request",
                        "hint": "No `apikey` request header or url param was found.",
                    },
                )
            if apikey not in (fake.anon_key, fake.service_role_key):
                return self._send(
                    401,
                    {
                        "message": "Invalid API key",
                        "hint": "Double check your Supabase `anon` or `service_role` API key.",
                    },
                )
            authorization = self.headers.get("Authorization")
            try:  # no Authorization at all: the anonymous role
                claims = (
                    jwt.decode(authorization.removeprefix("Bearer ").strip(), fake.jwt_secret,
                               algorithms=["HS256"], options={"verify_aud": False})
                    if authorization else {"role": "anon"}
                )  # fmt: skip
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
