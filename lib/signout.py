"""Supabase sessions ended by sign-out, refused by every instance without asking Supabase.

Access tokens are verified locally (`lib.accounts`), so the gateway never sees a
logout at Supabase Auth. `DELETE /api/session` marks the token's `session_id` as
ended in the counters (`lib.counters`), the marker living as long as the token
could; every request with a token reads that marker in the round trip it already
makes for its rate limit (`lib.limits`). A session found ended is remembered by
this process until its token expires, so the requests that follow cost nothing.
"""

from __future__ import annotations

import time

from lib.counters import KEY_PREFIX, Mark, counters
from lib.deadlines import Deadlines
from lib.errors import AuthenticationError
from lib.settings import settings

_ended = Deadlines()  # session id -> its token's expiry


def marker(session: str) -> str:
    """Where a session's end is marked beside the counters: `cgpt:session:<session_id>`."""
    return f"{KEY_PREFIX}session:{session}"


def end(session: str, expires: float) -> None:
    """Mark the session ended for as long as its token could be presented (a 503 if the counters fail)."""
    now = time.time()
    ttl = max(1, int(expires - now) + 60)  # a minute past `exp`
    counters(settings()).run([Mark(marker(session), now, ttl)])
    remember(session, expires)


def remember(session: str, expires: float) -> None:
    """This process refuses the session from memory until its token expires."""
    _ended.remember(session, expires)


def is_ended(session: str) -> bool:
    """Whether this process has seen the session ended (until its token expires)."""
    return _ended.holds(session, time.time())


def refusal() -> AuthenticationError:
    return AuthenticationError("This session has been signed out; sign in again.", code="session_ended")
