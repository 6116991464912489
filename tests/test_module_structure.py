"""Dependencies between lib's modules point one way where a circle was untangled.

Every import counts, a function's deferred one too (it is still a dependency),
except those under `if TYPE_CHECKING:`, which never run. `from lib.keys.records
import X` is an edge to lib.keys.records, not to the package that holds it.
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

LIB = ROOT / "lib"
UNTANGLED = {
    "lib.identity",
    "lib.limits",
    "lib.keys",
    "lib.keys.store",
    "lib.keys.sqlite",
    "lib.keys.supabase",
}


def _module(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []  # never runs
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= named or {node.module}
    return found & modules


def graph() -> dict[str, set[str]]:
    paths = list(LIB.rglob("*.py"))
    modules = {_module(path) for path in paths}
    return {_module(path): _imports(ast.parse(path.read_text()), modules) - {_module(path)} for path in paths}


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()] - seen:
            if nxt == goal:
                return True
            seen.add(nxt)
            todo.append(nxt)
    return False


def test_the_identity_limits_and_key_store_modules_form_no_circle() -> None:
    edges = graph()
    assert "lib.caller" in edges["lib.limits"] and "lib.identity" not in edges["lib.limits"]
    circles = sorted(
        (module, dependency)
        for module in UNTANGLED
        for dependency in edges[module]
        if reaches(edges, dependency, module)
    )
    assert circles == []


def test_the_stores_import_only_the_records_of_the_keys_package() -> None:
    edges = graph()
    for store in ("lib.keys.sqlite", "lib.keys.supabase"):
        assert {m for m in edges[store] if m.startswith("lib.keys")} == {"lib.keys.records"}
