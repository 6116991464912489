"""The production key store: the SQL functions of supabase/migrations, called through PostgREST.

Every call is one `POST /rest/v1/rpc/<function>` as the service role (the project's
secret key as `apikey` and bearer), bounded by TIMEOUT_SECONDS: a slow database
makes a request fail fast with a 503, never hang. Every answer is checked to have
its function's shape before it is used: anything else is the store failing (503),
never a user. After a few failures in a row a breaker skips the store for a short
cool-down (`lib/breaker.py`).

The call is JSON over the process's one connection pool (lib/transport.py, shared
with the providers, and with them its one TLS context): a cold instance's first
keyed request verifies its key without importing an HTTP library or supabase-py
(about half of what the whole request cost cold, see docs/design.md).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from lib import transport
from lib.breaker import Breaker
from lib.errors import GatewayError, NotFound
from lib.keys.records import KeyStoreUnavailable, NewKey, VerifiedKey, limit_reached, verified
from lib.upstream import pool

TIMEOUT_SECONDS = 0.8  # each of: connecting, sending, the first byte, every later read
_ANSWER_LIMIT = 1024 * 1024  # a user's 25 keys are a few kB
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


class _Refused(Exception):
    """PostgREST's error answer: the HTTP status and its body's `code` and `message`."""

    def __init__(self, status: int, body: object) -> None:
        fields = body if isinstance(body, dict) else {}
        self.status = status
        self.code = fields.get("code")
        self.message = fields.get("message")
        super().__init__(f"{status} {self.code} {self.message}")


class SupabaseKeys:
    def __init__(self, url: str, service_role_key: str, breaker: Breaker) -> None:
        self._rpc = f"{url.rstrip('/')}/rest/v1/rpc/"
        self._headers = {
            "apikey": service_role_key,
            "Authorization": f"Bearer {service_role_key}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._breaker = breaker
        self._problem = "failing"  # what the last failure was: the answer while the breaker is open

    def _call(self, function: str, check: Any, **params: Any) -> Any:
        """The function's answer once `check` accepts it; KeyStoreUnavailable at once while the breaker is open."""
        if not self._breaker.allows():
            raise KeyStoreUnavailable(self._problem)
        try:
            answer = check(self._post(function, params))
        except _Refused as error:
            verdict = _verdict(error)
            if verdict is not None:  # the store answered: its verdict, not a failure
                self._breaker.succeeded()
                raise verdict from None
            log.error("key store %s failed: %s", function, error)
            self._problem = _problem(error)
        except transport.TransportError as error:  # no connection, no (whole, readable) answer in time
            log.error("key store %s failed: %s", function, type(error).__name__)
            self._problem = "unreachable"
        # A body that is not JSON, or not the function's shape.
        except (ValueError, TypeError, KeyError) as error:
            log.error("key store %s failed: %s", function, type(error).__name__)
            self._problem = "failing"
        else:
            self._breaker.succeeded()
            return answer
        self._breaker.failed()
        raise KeyStoreUnavailable(self._problem)

    def _post(self, function: str, params: dict[str, Any]) -> Any:
        """The function's JSON answer; _Refused for an error status, ValueError for a body that is not JSON."""
        body = json.dumps(params, separators=(",", ":")).encode()
        response = pool().request(
            "POST",
            self._rpc + function,
            headers=self._headers,
            body=body,
            connect_timeout=TIMEOUT_SECONDS,
            write_timeout=TIMEOUT_SECONDS,
            first_byte_timeout=TIMEOUT_SECONDS,
        )
        try:
            raw = bytearray()
            while data := response.read(TIMEOUT_SECONDS):
                raw += data
                if len(raw) > _ANSWER_LIMIT:
                    raise _Malformed("the answer is too large")
        finally:
            response.close()
        if response.status_code < 400:
            return json.loads(raw)  # every function answers JSON, null included: empty is no answer
        try:
            error = json.loads(raw)
        except ValueError:  # a proxy's error page
            error = None
        raise _Refused(response.status_code, error)

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


def _problem(error: _Refused) -> str:
    """Which failure a PostgREST error is, for the operator (GET /api/health)."""
    if error.code == "PGRST202":  # no such function in the schema: supabase/migrations not applied
        return "functions_missing"
    if error.status in (401, 403):  # the gateway or PostgREST refused the project key
        return "wrong_key"
    return "failing"


def _verdict(error: _Refused) -> GatewayError | None:
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
