"""Request bodies checked against pydantic models, every failure a 400 naming its field.

A route names its model (`parse_body(request, "ChatRequest")`) rather than importing
it: lib/schemas.py and pydantic's model machinery (tens of ms, even with bytecode) are
loaded by the first request that reads a body, not by every cold start, and never
by a function or method that reads none.
"""

from __future__ import annotations

import re
from importlib import import_module
from typing import Any

from lib.errors import BadRequest
from lib.settings import settings
from lib.web import Request

# Our fields are snake_case; pydantic names union branches in an error's location
# by their type ("str", "list[ContentPart]", "NamedToolChoice", "literal[...]"), and
# a message by its role right after its index (`messages, 0, "user", "content"`).
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")
_BRANCH_NAMES = {"str", "int", "float", "bool", "none", "dict", "list"}


def parse_body(request: Request, schema: str, *, optional: bool = False) -> Any:
    """The request's JSON body as the model of lib/schemas.py named `schema`, or a 400/413 in the envelope.

    An `optional` body may be left out entirely: then every field takes its default.
    """
    raw = request.body(settings().max_body_bytes)
    from pydantic_core import ValidationError  # like the schemas: loaded by the first body read

    model = getattr(import_module("lib.schemas"), schema)
    if optional and not raw.strip():
        return model()
    if not raw.strip():
        raise BadRequest("Request body is empty; send a JSON object.", code="invalid_json")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as error:
        raise _bad_request(error) from None


def parse_fields(schema: str, fields: dict[str, Any]) -> Any:
    """`fields` given otherwise than as JSON (a command line's options) as the model `schema`, or
    the same 400 naming the field that the body would get."""
    from pydantic_core import ValidationError

    try:
        return getattr(import_module("lib.schemas"), schema).model_validate(fields, strict=True)
    except ValidationError as error:
        raise _bad_request(error) from None


def _field_path(loc: tuple[int | str, ...]) -> str:
    from lib.schemas import MESSAGE_ROLES  # loaded by parse_body already

    path = ""
    for i, part in enumerate(loc):
        role = part in MESSAGE_ROLES and i > 0 and isinstance(loc[i - 1], int)
        if isinstance(part, int):
            path += f"[{part}]"
        elif _FIELD.fullmatch(part) and part not in _BRANCH_NAMES and not role:
            path += f".{part}" if path else part
    return path


def _bad_request(error: Any) -> BadRequest:
    """The 400 for a pydantic `ValidationError`."""
    problems = error.errors(include_url=False)
    first = problems[0]
    kind = first["type"]
    if kind == "json_invalid":
        return BadRequest(
            f"Request body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}.",
            code="invalid_json",
        )
    if kind == "model_type" and not first["loc"]:
        return BadRequest("Request body must be a JSON object.", code="invalid_json")
    problems = [_name_discriminator(problem) for problem in problems]
    # The most specific problem; union branches failing at one place are reported together.
    deepest = max(problems, key=lambda p: len(_field_path(p["loc"])))
    field = _field_path(deepest["loc"])
    if deepest["type"] == "extra_forbidden":
        return BadRequest(f"Unknown field '{field}'.", code="unknown_field", param=field)
    if deepest["type"] == "missing":
        return BadRequest(f"'{field}' is required.", code="missing_field", param=field)
    # A validator's own ValueError reads "Value error, <its text>": the text is the message.
    messages = dict.fromkeys(
        p["msg"].removeprefix("Value error, ") for p in problems if _field_path(p["loc"]) == field
    )
    return BadRequest(f"Invalid '{field}': {' or '.join(messages)}.", code="invalid_value", param=field)


def _name_discriminator(problem: dict) -> dict:
    """A missing or unknown `role` is reported at the field itself, like any other field."""
    if problem["type"] not in ("union_tag_not_found", "union_tag_invalid"):
        return problem
    loc = (*problem["loc"], problem["ctx"]["discriminator"].strip("'"))
    if problem["type"] == "union_tag_not_found":
        return {**problem, "loc": loc, "type": "missing"}
    return {**problem, "loc": loc, "msg": f"Input should be one of {problem['ctx']['expected_tags']}"}
