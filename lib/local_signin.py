"""Signing in to the dashboard of the embedded default (`make dev`, no Supabase): one-time links.

The local server prints a link carrying a random code, as Jupyter does; whoever
has seen the terminal can open it, and nobody else can guess it (256 random bits).
The code is stored only as its SHA-256 under CLOUDGPT_DATA_DIR, lives 15 minutes
and is consumed by the first `POST /api/session` that presents it, in any process
of the local server. What it buys is an access token for the local operator: an
HS256 JWT signed with a secret kept (0600) beside it, which `lib.accounts` accepts
only in local mode.
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

from lib.accounts import LOCAL_ISSUER
from lib.errors import AuthenticationError, ServiceUnavailable
from lib.instance import kept
from lib.settings import settings
from lib.sqlite_file import open_sqlite

CODE_SECONDS = 15 * 60
TOKEN_SECONDS = 12 * 3600

_lock = threading.Lock()  # the process's one connection, used by one thread at a time
_SCHEMA = """
    CREATE TABLE IF NOT EXISTS signin_codes (
        code_hash TEXT PRIMARY KEY,
        expires INTEGER NOT NULL
    );
"""


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _codes() -> sqlite3.Connection:
    path = settings().data_dir / "signin.sqlite3"
    return kept(("signin-codes", path), lambda: open_sqlite(path, _SCHEMA))


def _identity() -> dict[str, str]:
    """The local secret and operator id, made once per data directory and then read back."""
    path = settings().data_dir / "local-signin.json"
    try:
        return kept(("signin-identity", path), lambda: _read_or_create(path))
    except (OSError, ValueError) as error:
        raise _unavailable() from error


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The local sign-in store under CLOUDGPT_DATA_DIR cannot be used.", code="signin_store_unavailable"
    )


def _read_or_create(path: Path) -> dict[str, str]:
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
    return json.loads(path.read_text())


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
            "print a new one with `make signin`.",
            code="invalid_code",
        )
    import jwt

    now = int(time.time())
    claims = {
        "iss": LOCAL_ISSUER,
        "sub": identity["operator"],
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + TOKEN_SECONDS,
    }
    token = jwt.encode(claims, identity["secret"], algorithm="HS256")
    return {
        "accessToken": token,
        "expiresAt": claims["exp"],
        "user": {"id": identity["operator"], "email": None},
    }


def verify(token: str) -> dict[str, Any]:
    """The claims of a token this server issued; raises PyJWT's errors otherwise."""
    import jwt

    return jwt.decode(
        token,
        _identity()["secret"],
        algorithms=["HS256"],
        audience="authenticated",
        issuer=LOCAL_ISSUER,
        options={"require": ["exp", "sub", "aud", "iss"]},
    )
