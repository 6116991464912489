"""The production key store: the SQL functions of supabase/migrations, called through supabase-py.

Every call is one `rpc()` round trip as the service role, bounded by TIMEOUT_SECONDS:
a slow database makes a request fail fast with a 503, never hang.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from lib.errors import NotFound
from lib.keys.store import KeyStoreUnavailable, NewKey, VerifiedKey, limit_reached

TIMEOUT_SECONDS = 0.8
log = logging.getLogger("cloudgpt")


class SupabaseKeys:
    def __init__(self, url: str, service_role_key: str) -> None:
        options = ClientOptions(
            httpx_client=httpx.Client(timeout=TIMEOUT_SECONDS),  # connect, read, write and pool
            auto_refresh_token=False,
            persist_session=False,
        )
        self._client = create_client(url, service_role_key, options)

    def _call(self, function: str, **params: Any) -> Any:
        try:
            return self._client.rpc(function, params).execute().data
        except APIError as error:
            if error.message == "api_key_limit_reached":
                raise limit_reached() from None
            if error.code == "23503":  # the owner is not in auth.users
                raise NotFound("No such user.", code="unknown_user") from None
            log.error("key store %s failed: %s %s", function, error.code, error.message)
        except httpx.HTTPError as error:
            log.error("key store %s failed: %s", function, type(error).__name__)
        raise KeyStoreUnavailable()

    def create(self, key: NewKey, max_keys: int) -> int:
        return self._call(
            "cloudgpt_create_api_key",
            p_id=key.id,
            p_user_id=key.user,
            p_name=key.name,
            p_prefix=key.prefix,
            p_key_hash=key.hash,
            p_max_keys=max_keys,
        )

    def list(self, user: str) -> list[dict[str, object]]:
        rows = self._call("cloudgpt_list_api_keys", p_user_id=user)
        return [
            {
                "id": r["id"],
                "name": r["name"],
                "prefix": r["prefix"],
                "created": r["created"],
                "lastUsed": r["last_used"],
            }
            for r in rows
        ]

    def delete(self, user: str, key_id: str) -> bool:
        return bool(self._call("cloudgpt_delete_api_key", p_user_id=user, p_id=key_id))

    def verify(self, hash: str, touch_after: int) -> VerifiedKey | None:
        found = self._call("cloudgpt_verify_api_key", p_key_hash=hash, p_touch_after_seconds=touch_after)
        if found is None:
            return None
        return VerifiedKey(user=found["user_id"], key_id=found["key_id"])
