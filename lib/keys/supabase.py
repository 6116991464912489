"""The production key store: the SQL functions of supabase/migrations, called through supabase-py.

Every call is one `rpc()` round trip as the service role, bounded by TIMEOUT_SECONDS:
a slow database makes a request fail fast with a 503, never hang. Every answer is
checked to have its function's shape before it is used: anything else is the
store failing (503), never a user. After a few failures in a row a breaker skips
the store for a short cool-down (`lib/breaker.py`).
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from lib.breaker import Breaker
from lib.errors import GatewayError, NotFound
from lib.keys.records import KeyStoreUnavailable, NewKey, VerifiedKey, limit_reached, verified

TIMEOUT_SECONDS = 0.8
_KEY_ID = re.compile(r"key_[A-Za-z0-9]{20}")
_OPTIONAL_INT = (int, type(None))
# The flat shape of cloudgpt_api_key_fields: each field and the types it may have.
_FIELDS: dict[str, Any] = {
    "id": str, "name": str, "prefix": str, "created": int, "last_used": _OPTIONAL_INT,
    "expires": _OPTIONAL_INT, "disabled": bool, "models": (list, type(None)),
    "limit_chat": _OPTIONAL_INT, "limit_image": _OPTIONAL_INT, "limit_video": _OPTIONAL_INT,
    "quota_period": (str, type(None)), "quota_requests": _OPTIONAL_INT, "quota_tokens": _OPTIONAL_INT,
    "version": int,
}  # fmt: skip
log = logging.getLogger("cloudgpt")


class _Malformed(ValueError):
    """An answer without the shape its function returns."""


class SupabaseKeys:
    def __init__(self, url: str, service_role_key: str, breaker: Breaker) -> None:
        options = ClientOptions(
            httpx_client=httpx.Client(  # the timeout bounds connect, read, write and pool
                timeout=TIMEOUT_SECONDS, event_hooks={"response": [_note_status]}
            ),
            auto_refresh_token=False,
            persist_session=False,
        )
        self._client = create_client(url, service_role_key, options)
        self._breaker = breaker
        self._problem = "failing"  # what the last failure was: the answer while the breaker is open

    def _call(self, function: str, check: Any, **params: Any) -> Any:
        """The function's answer once `check` accepts it; KeyStoreUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise KeyStoreUnavailable(self._problem)
        try:
            answer = check(self._client.rpc(function, params).execute().data)
        except APIError as error:
            verdict = _verdict(error)
            if verdict is not None:  # the store answered: its verdict, not a failure
                self._breaker.succeeded()
                raise verdict from None
            log.error("key store %s failed: %s %s", function, error.code, error.message)
            self._problem = _problem(error, getattr(_status, "code", None))
        except httpx.TransportError as error:  # no connection, or no answer in time
            log.error("key store %s failed: %s", function, type(error).__name__)
            self._problem = "unreachable"
        # httpx's other failures; a body that is not JSON, or not the function's shape.
        except (httpx.HTTPError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.error("key store %s failed: %s", function, type(error).__name__)
            self._problem = "failing"
        else:
            self._breaker.succeeded()
            return answer
        self._breaker.failed()
        raise KeyStoreUnavailable(self._problem)

    def create(self, key: NewKey, max_keys: int) -> int:
        return self._call(
            "cloudgpt_create_api_key",
            _integer,
            p_id=key.id,
            p_user_id=key.user,
            p_name=key.name,
            p_prefix=key.prefix,
            p_key_hash=key.hash,
            p_max_keys=max_keys,
            p_controls=dict(key.controls),
        )

    def list(self, user: str) -> list[dict[str, Any]]:
        return self._call("cloudgpt_list_api_keys", _rows, p_user_id=user)

    def update(self, user: str, key_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call(
            "cloudgpt_update_api_key", _key_or_none, p_user_id=user, p_id=key_id, p_changes=dict(changes)
        )

    def delete(self, user: str, key_id: str) -> bool:
        return self._call("cloudgpt_delete_api_key", _boolean, p_user_id=user, p_id=key_id)

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        found = self._call(
            "cloudgpt_verify_api_key_with_controls",
            _verified,
            p_key_hash=hash,
            p_touch_after_seconds=touch_after,
        )
        return None if found is None else verified(found, found["user_id"], hash)


# postgrest-py's APIError carries the error body but not its HTTP status; each thread notes it here.
_status = threading.local()


def _note_status(response: httpx.Response) -> None:
    _status.code = response.status_code


def _problem(error: APIError, status: int | None) -> str:
    """Which failure a PostgREST error is, for the operator (GET /api/health)."""
    if error.code == "PGRST202":  # no such function in the schema: supabase/migrations not applied
        return "functions_missing"
    if status in (401, 403):  # the gateway or PostgREST refused the project key
        return "wrong_key"
    return "failing"


def _verdict(error: APIError) -> GatewayError | None:
    """The caller's error for a refusal the SQL functions raise on purpose; None for a failure."""
    if error.message == "api_key_limit_reached":
        return limit_reached()
    if error.code == "23503":  # the owner is not in auth.users
        return NotFound("No such user.", code="unknown_user")
    return None


def _verified(answer: object) -> dict[str, Any] | None:
    """JSON null: no such key; the key's flat fields and its owner's `user_id` (a UUID). Nothing else."""
    if answer is None:
        return None
    if not isinstance(answer, dict) or set(answer) != {*_FIELDS, "user_id"}:
        raise _Malformed(f"verification answered {type(answer).__name__}")
    key = _key({name: answer[name] for name in _FIELDS})
    user = answer["user_id"]
    if not isinstance(user, str) or str(uuid.UUID(user)) != user.lower():  # ValueError for a non-UUID
        raise _Malformed("verification answered a malformed user id")
    return key | {"user_id": user.lower()}


def _key(row: object) -> dict[str, Any]:
    """A key in the flat shape, every field of its type, its id a key id; anything else is malformed."""
    if not isinstance(row, dict) or set(row) != set(_FIELDS):
        raise _Malformed("a key without the fields of its shape")
    for name, kind in _FIELDS.items():
        value = row[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise _Malformed(f"a key whose {name} is {type(value).__name__}")
    if not _KEY_ID.fullmatch(row["id"]) or not all(isinstance(m, str) for m in row["models"] or []):
        raise _Malformed("a malformed key")
    return row


def _key_or_none(answer: object) -> dict[str, Any] | None:
    return None if answer is None else _key(answer)


def _integer(answer: object) -> int:
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise _Malformed("creation answered no time")
    return answer


def _boolean(answer: object) -> bool:
    if not isinstance(answer, bool):
        raise _Malformed("deletion answered no boolean")
    return answer


def _rows(answer: object) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise _Malformed("listing answered no rows")
    return [_key(row) for row in answer]
