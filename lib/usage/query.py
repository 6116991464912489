"""GET /api/usage's and GET /api/activity's query parameters, each refused with a 400 that names it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from lib.errors import BadRequest
from lib.web import Request

MAX_DAYS = 90
DEFAULT_DAYS = 30
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
_KEY_ID = re.compile(r"key_[A-Za-z0-9]{20}")
_REQUEST_ID = re.compile(r"req_[0-9a-f]{24}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")


def _invalid(param: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_parameter", param=param)


def parse_days(value: str | None) -> int:
    """`days`: a whole number from 1 to 90, 30 when absent."""
    if value is None:
        return DEFAULT_DAYS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise _invalid("days", f"days must be a whole number from 1 to {MAX_DAYS}.")
    return int(value)


def parse_key_id(value: str | None) -> str | None:
    """`keyId`: one key's id (`key_` and 20 letters or digits), or None for all of them."""
    if value is None:
        return None
    if not _KEY_ID.fullmatch(value):
        raise _invalid("keyId", "keyId must be an API key's id (key_...).")
    return value


def parse_format(value: str | None) -> str:
    """`format`: `json` (the default) or `csv`, for spreadsheets."""
    if value not in (None, "json", "csv"):
        raise _invalid("format", "format must be json or csv.")
    return value or "json"


def _known_only(request: Request, route: str, names: tuple[str, ...]) -> None:
    """Any parameter but `names` is a 400 too, as an unknown body field is."""
    for name, _ in parse_qsl(request.environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if name not in names:
            raise _invalid(name, f"Unknown query parameter {name!r}; {route} takes {', '.join(names)}.")


def usage_query(request: Request) -> tuple[int, str | None, str]:
    """`days`, `keyId` and `format`."""
    _known_only(request, "GET /api/usage", ("days", "keyId", "format"))
    return (
        parse_days(request.given("days")),
        parse_key_id(request.given("keyId")),
        parse_format(request.given("format")),
    )


@dataclass(frozen=True)
class ActivityQuery:
    """Which of a user's activity entries to list: at most `limit` (None: all of them), older than `before`."""

    limit: int | None = DEFAULT_LIMIT
    before: str | None = None  # a request id
    key_id: str | None = None
    model: str | None = None
    status: Literal["ok", "error"] | None = None

    def matches(self, entry: dict[str, object]) -> bool:
        return (
            (self.key_id is None or entry["keyId"] == self.key_id)
            and (self.model is None or entry["model"] == self.model)
            and (self.status is None or (entry["error"] is None) == (self.status == "ok"))
        )


def activity_query(request: Request) -> tuple[ActivityQuery, str]:
    """`limit`, `before`, `keyId`, `model`, `status` and `format`; a CSV without `limit` holds every entry kept."""
    _known_only(request, "GET /api/activity", ("limit", "before", "keyId", "model", "status", "format"))
    output = parse_format(request.given("format"))
    limit, before = request.given("limit"), request.given("before")
    model, status = request.given("model"), request.given("status")
    if limit is not None and (not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT):
        raise _invalid("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    if before is not None and not _REQUEST_ID.fullmatch(before):
        raise _invalid("before", "before must be a request id (req_...) from an earlier page.")
    if model is not None and not _MODEL.fullmatch(model):
        raise _invalid("model", "model must be a model id.")
    if status not in (None, "ok", "error"):
        raise _invalid("status", "status must be ok or error.")
    query = ActivityQuery(
        limit=int(limit) if limit is not None else (None if output == "csv" else DEFAULT_LIMIT),
        before=before,
        key_id=parse_key_id(request.given("keyId")),
        model=model,
        status=status,  # type: ignore[arg-type]
    )
    return query, output
