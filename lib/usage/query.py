"""GET /api/usage's query parameters, each refused with a 400 that names it."""

from __future__ import annotations

import re

from lib.errors import BadRequest

MAX_DAYS = 90
DEFAULT_DAYS = 30
_KEY_ID = re.compile(r"key_[A-Za-z0-9]{20}")


def parse_days(value: str) -> int:
    """`days`: a whole number from 1 to 90, 30 when absent."""
    if value == "":
        return DEFAULT_DAYS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise BadRequest(
            f"days must be a whole number from 1 to {MAX_DAYS}.", code="invalid_parameter", param="days"
        )
    return int(value)


def parse_key_id(value: str) -> str | None:
    """`keyId`: one key's id (`key_` and 20 letters or digits), or None for all of them."""
    if value == "":
        return None
    if not _KEY_ID.fullmatch(value):
        raise BadRequest("keyId must be an API key's id (key_...).", code="invalid_parameter", param="keyId")
    return value
