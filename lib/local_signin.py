"""Signing in to the dashboard of the embedded default (`make dev`, no Supabase): one-time links.

The local server prints a link carrying a random code, as Jupyter does; whoever
has seen the terminal can open it, and nobody else can guess it (256 random bits).
The code is stored only as its SHA-256 under CLOUDGPT_DATA_DIR, lives 15 minutes
and is consumed by the first `POST /api/session` that presents it, in any process
of the local server. What it buys is an access token for the local operator: an
HS256 JWT signed with a secret kept (0600) beside it, which `lib.accounts` accepts
only in local mode. Each token names its session (`sid`), kept in the same SQLite
file until it expires or is ended by `DELETE /api/session` (sign-out): a token is
good only while its session is. A change of the secret file (edited, replaced or
deleted) is seen by the next verification in every process, and ends every token
signed with the old secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lib.errors import AuthenticationError, ServiceUnavailable
from lib.instance import kept
from lib.settings import settings
from lib.sqlite_file import open_sqlite

ISSUER = "cloudgpt-local"  # how lib.accounts tells these tokens from Supabase Auth's
CODE_SECONDS = 15 * 60
TOKEN_SECONDS = 12 * 3600

_lock = threading.Lock()  # the process's one connection, used by one thread at a time
_SCHEMA = """
    CREATE TABLE IF NOT EXISTS signin_codes (
        code_hash TEXT PRIMARY KEY,
        expires INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS signin_sessions (
        id TEXT PRIMARY KEY,
        expires INTEGER NOT NULL
    );
"""


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _codes() -> sqlite3.Connection:
    path = settings().data_dir / "signin.sqlite3"
    return kept(("signin-codes", path), lambda: open_sqlite(path, _SCHEMA))


_identities: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}  # path -> (its stat, its content)


def _identity() -> dict[str, str]:
    """The local secret and operator id, made once per data directory and read back when the file changes.

    One `os.stat` per call (a few microseconds; pathlib's would double it) is what makes a
    new secret count at once.
    """
    path = os.path.join(settings().data_dir, "local-signin.json")
    try:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            _read_or_create(Path(path))
            stat = os.stat(path)
        version = (stat.st_ino, stat.st_mtime_ns)
        known = _identities.get(path)
        if known is None or known[0] != version:
            known = (version, json.loads(Path(path).read_text()))
            _identities[path] = known
        return known[1]
    except (OSError, ValueError) as error:
        raise _unavailable() from error


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The local sign-in store under CLOUDGPT_DATA_DIR cannot be used.", code="signin_store_unavailable"
    )


def _read_or_create(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"secret": secrets.token_hex(32), "operator": str(uuid.uuid4())}, file)
        try:
            os.link(draft, path)  # atomic and never overwriting: two processes agree on one identity
        except FileExistsError:
            pass
        finally:
            draft.unlink()


def operator() -> str:
    """The local operator's user id: whom the one-time links sign in, so whose keys the dashboard shows."""
    return _identity()["operator"]


def new_code() -> str:
    """A fresh one-time code (the expired ones are swept on the way)."""
    code = secrets.token_urlsafe(32)
    now = int(time.time())
    db = _codes()
    with _lock:
        db.execute("DELETE FROM signin_codes WHERE expires <= ?", (now,))
        db.execute(
            "INSERT INTO signin_codes (code_hash, expires) VALUES (?, ?)", (_hash(code), now + CODE_SECONDS)
        )
    return code


def redeem(code: str) -> dict[str, Any]:
    """The session a valid code buys, the code consumed; a 401 `invalid_code` otherwise."""
    identity = _identity()
    try:
        consume = "DELETE FROM signin_codes WHERE code_hash = ? AND expires > ? RETURNING 1"
        db = _codes()
        with _lock:
            used = db.execute(consume, (_hash(code), int(time.time()))).fetchone()
    except (sqlite3.Error, OSError) as error:
        raise _unavailable() from error
    if used is None:
        raise AuthenticationError(
            "This sign-in link was already used, has expired or is unknown; "
            "print a new one with make signin.",
            code="invalid_code",
        )
    import jwt

    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": identity["operator"],
        "aud": "authenticated",
        "role": "authenticated",
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + TOKEN_SECONDS,
    }
    try:
        with _lock:
            db.execute("DELETE FROM signin_sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO signin_sessions (id, expires) VALUES (?, ?)", (claims["sid"], claims["exp"])
            )
    except sqlite3.Error as error:
        raise _unavailable() from error
    token = jwt.encode(claims, identity["secret"], algorithm="HS256")
    return {
        "accessToken": token,
        "expiresAt": claims["exp"],
        "user": {"id": identity["operator"], "email": None},
    }


def _claims(token: str) -> dict[str, Any]:
    """The claims of a token signed with the current secret; raises PyJWT's errors otherwise."""
    import jwt

    return jwt.decode(
        token,
        _identity()["secret"],
        algorithms=["HS256"],
        audience="authenticated",
        issuer=ISSUER,
        options={"require": ["exp", "sub", "aud", "iss", "sid"]},
    )


def verify(token: str) -> dict[str, Any]:
    """The claims of a token this server issued whose session is still open; raises PyJWT's errors otherwise."""
    claims = _claims(token)
    try:
        db = _codes()
        with _lock:
            live = db.execute(
                "SELECT 1 FROM signin_sessions WHERE id = ? AND expires > ?",
                (str(claims["sid"]), int(time.time())),
            ).fetchone()
    except (sqlite3.Error, OSError) as error:
        raise _unavailable() from error
    if live is None:
        raise AuthenticationError(
            "Invalid access token: its session has ended (signed out or expired); sign in again.",
            code="invalid_token",
        )
    return claims


def end_session(token: str) -> None:
    """Sign out: the token's session ends at once, in every process; a 401 for a token not issued here."""
    import jwt

    try:
        claims = _claims(token)
    except jwt.PyJWTError:
        raise AuthenticationError(
            "Invalid access token: not a session of this server.", code="invalid_token"
        ) from None
    try:
        db = _codes()
        with _lock:
            db.execute("DELETE FROM signin_sessions WHERE id = ?", (str(claims["sid"]),))
    except (sqlite3.Error, OSError) as error:
        raise _unavailable() from error
