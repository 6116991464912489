"""GET /api/usage's query parameters, each refused with a 400 that names it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from lib.errors import BadRequest
from lib.web import Request

MAX_DAYS = 90
DEFAULT_DAYS = 30
_KEY_ID = re.compile(r"key_[A-Za-z0-9]{20}")


def parse_days(value: str | None) -> int:
    """`days`: a whole number from 1 to 90, 30 when absent."""
    if value is None:
        return DEFAULT_DAYS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise BadRequest(
            f"days must be a whole number from 1 to {MAX_DAYS}.", code="invalid_parameter", param="days"
        )
    return int(value)


def parse_key_id(value: str | None) -> str | None:
    """`keyId`: one key's id (`key_` and 20 letters or digits), or None for all of them."""
    if value is None:
        return None
    if not _KEY_ID.fullmatch(value):
        raise BadRequest("keyId must be an API key's id (key_...).", code="invalid_parameter", param="keyId")
    return value


def usage_query(request: Request) -> tuple[int, str | None]:
    """`days` and `keyId`; any other parameter is a 400 too, as an unknown body field is."""
    for name, _ in parse_qsl(request.environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if name not in ("days", "keyId"):
            raise BadRequest(
                f"Unknown query parameter {name!r}; GET /api/usage takes days and keyId.",
                code="invalid_parameter",
                param=name,
            )
    return parse_days(request.given("days")), parse_key_id(request.given("keyId"))
