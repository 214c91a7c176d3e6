"""The emulator's modules import only downward (no cycles) and nothing from the rest of sessionforce."""

from __future__ import annotations

import ast
from pathlib import Path

import sessionforce.emulator

PACKAGE = Path(sessionforce.emulator.__file__).parent
PREFIX = "sessionforce.emulator"


def _imports(path: Path) -> set[str]:
    """Every ``sessionforce...`` module a file imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sessionforce"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sessionforce"))
    return found


def _graph() -> dict[str, set[str]]:
    return {f"{PREFIX}.{path.stem}" if path.stem != "__init__" else PREFIX: _imports(path)
            for path in sorted(PACKAGE.glob("*.py"))}


def test_no_import_reaches_outside_the_emulator() -> None:
    outside = {module: sorted(i for i in imports if not i.startswith(PREFIX)) for module, imports in _graph().items()}
    assert {m: i for m, i in outside.items() if i} == {}


def test_implementation_modules_are_private_and_form_no_cycle() -> None:
    graph = _graph()
    public = {m for m in graph if not m.rsplit(".", 1)[1].startswith("_")}
    assert public == {PREFIX, f"{PREFIX}.pytest_plugin"}
    order: list[str] = []
    visiting: list[str] = []

    def visit(module: str) -> None:
        if module in order:
            return
        assert module not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(module):], module])}"
        visiting.append(module)
        for dependency in graph.get(module, ()):
            if dependency != PREFIX:  # `from sessionforce.emulator import x` only in docs/tests, never inside
                visit(dependency)
        visiting.pop()
        order.append(module)

    for module in graph:
        visit(module)
    assert not any(PREFIX in graph[m] for m in graph if m != PREFIX), "a private module imports the package root"
