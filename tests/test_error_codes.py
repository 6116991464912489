"""The error table of docs/api.md names exactly the codes the code raises.

A code is raised where a call passes `code="..."`, or where an error class is
created without one and its own (or inherited) `code` applies. Base classes whose
default every raiser overrides raise nothing, so the table need not list them.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re

import lib
from lib.errors import GatewayError
from tests.conftest import ROOT

SOURCES = sorted([*(ROOT / "lib").rglob("*.py"), *(ROOT / "api").rglob("*.py")])


def _error_classes() -> dict[str, type[GatewayError]]:
    for module in pkgutil.walk_packages(lib.__path__, "lib."):
        importlib.import_module(module.name)
    found, pending = {}, [GatewayError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return found


def raised_codes() -> set[str]:
    classes = _error_classes()
    codes = set()
    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            given = keywords.get("code")
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                codes.add(given.value)
            elif given is None and isinstance(node.func, ast.Name) and node.func.id in classes:
                codes.add(classes[node.func.id].code)
    return codes


def documented_codes() -> set[str]:
    """The codes column of the table under `## Errors`."""
    section = (ROOT / "docs" / "api.md").read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
    assert rows[0][3].strip() == "codes", "the table's third column is no longer `codes`"
    return {code for row in rows[1:] for code in re.findall(r"`([a-z_]+)`", row[3])}


def test_every_code_the_code_raises_is_in_the_error_table() -> None:
    assert raised_codes() - documented_codes() == set()


def test_the_error_table_names_no_code_the_code_never_raises() -> None:
    assert documented_codes() - raised_codes() == set()


def test_the_collection_finds_class_codes_and_codes_passed_by_keyword() -> None:
    codes = raised_codes()
    # KeyLimitReached is created without a code (its class's own); the other by keyword.
    assert {"key_limit_reached", "upstream_stream_cut", "internal_error"} <= codes
    assert "invalid_request" not in codes  # BadRequest's default: every raiser names its own
