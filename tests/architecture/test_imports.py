"""The layering, checked from the source: every import of every module under src/sessionforce (also
inside functions and ``TYPE_CHECKING`` blocks) goes downward, none forms a cycle, and no module is long.

Layers (a module may import its own layer and the ones below it):
0 ``_version``, ``_logging``, ``_json_logs``, ``errors``, ``telemetry`` < 1 ``config`` < 2 ``agent_api``
< 3 ``store`` < 4 ``lifecycle`` < 5 ``blocking`` < 6 ``cli``, ``gateway``. The emulator stands apart: it
imports nothing of ours outside ``sessionforce.emulator`` but ``sessionforce._version``; the stores do not
import the wire. The root ``__init__`` is the export table and may name anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sessionforce"
MAX_LINES = 400

LAYERS: dict[str, int] = {
    "_version": 0, "_logging": 0, "_json_logs": 0, "errors": 0, "telemetry": 0,
    "config": 1,
    "agent_api": 2,
    "store": 3,
    "lifecycle": 4,
    "blocking": 5,
    "cli": 6, "gateway": 6,
}
EMULATOR_MAY_IMPORT = {"sessionforce._version"}
NOT_BELOW: dict[str, set[str]] = {"store": {"agent_api"}}
"""Lower packages a package must still not import: the stores hold records, not wire objects."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every sessionforce module ``name`` imports, with the line: ``from a import b`` counts as ``a.b``
    when that is a module, else as ``a`` (a package's ``__init__``)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sessionforce":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "sessionforce":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if name == "sessionforce":
            continue  # the export table: it names everything, lazily
        graph[name] = {target for target, _ in _imports(name, path) if target != name and target in MODULES}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Strongly connected components (Tarjan) of more than one module, among modules under ``within``."""
    nodes = {n for n in graph if n == within or n.startswith(within + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node] & nodes:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_every_top_level_name_has_a_layer() -> None:
    unknown = sorted({m.split(".")[1] for m in MODULES if m.count(".") >= 1} - set(LAYERS) - {"emulator"})
    assert not unknown, f"give these a layer in LAYERS (and docs/architecture.md): {unknown}"


@pytest.mark.parametrize(
    "package",
    sorted({".".join(m.split(".")[:2]) for m in MODULES if m.count(".") >= 1}),
)
def test_no_import_cycle(package: str) -> None:
    cycles = _cycles(_graph(), package)
    assert not cycles, f"import cycles in {package}: {cycles}"


def test_no_import_cycle_across_packages() -> None:
    assert not [c for c in _cycles(_graph(), "sessionforce") if len({".".join(m.split(".")[:2]) for m in c}) > 1]


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for name, path in MODULES.items():
        if name == "sessionforce":
            continue
        top = name.split(".")[1]
        for target, line in _imports(name, path):
            if top == "emulator":
                if not target.startswith("sessionforce.emulator") and target not in EMULATOR_MAY_IMPORT:
                    upward.append(f"{path.relative_to(SRC)}:{line}: the emulator imports {target}")
                continue
            if target == "sessionforce":
                upward.append(f"{path.relative_to(SRC)}:{line}: imports the root package (use the layer's module)")
                continue
            if target.split(".")[1] == "emulator":
                if top not in ("cli", "gateway"):
                    upward.append(f"{path.relative_to(SRC)}:{line}: {name} imports the emulator")
                continue
            mine, theirs = _layer(name), _layer(target)
            assert mine is not None, name
            assert theirs is not None, target
            if theirs > mine or target.split(".")[1] in NOT_BELOW.get(top, set()):
                where = f"{path.relative_to(SRC)}:{line}"
                upward.append(f"{where}: {name} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_checker_sees_function_and_type_checking_imports(tmp_path: Path) -> None:
    # The wire once imported the lifecycle inside a function and under TYPE_CHECKING; both must be seen.
    probe = tmp_path / "_probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sessionforce.store import Store\n"
        "def f():\n    from sessionforce.lifecycle import _conversation\n    from . import _retry\n"
    )
    found = {target for target, _ in _imports("sessionforce.agent_api._probe", probe)}
    assert found == {"sessionforce.store", "sessionforce.lifecycle._conversation", "sessionforce.agent_api._retry"}


def test_the_cycle_finder_finds_a_cycle() -> None:
    x, y, z = "sessionforce.a.x", "sessionforce.a.y", "sessionforce.a.z"
    graph = {x: {y}, y: {x, z}, z: set()}
    assert _cycles(graph, "sessionforce.a") == [[x, y]]


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_wire_package_loads_alone() -> None:
    code = (
        "import sys, sessionforce.agent_api\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sessionforce.store', 'sessionforce.lifecycle',"
        " 'sessionforce.blocking', 'sessionforce.cli', 'sessionforce.emulator'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"


def test_the_configuration_loads_without_the_wire() -> None:
    code = "import sys, sessionforce.config\nprint(sorted(m for m in sys.modules if m.startswith('aiohttp')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"


def test_the_export_table_and_the_type_checking_imports_agree() -> None:
    import sessionforce

    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                assert stmt.module
                for alias in stmt.names:
                    assert alias.asname == alias.name, f"{alias.name}: write it `{alias.name} as {alias.name}`"
                    typed[alias.name] = stmt.module
    assert typed == sessionforce._EXPORTS
    assert set(sessionforce.__all__) == {*sessionforce._EXPORTS, "__version__"}
    for name, module in sessionforce._EXPORTS.items():
        assert getattr(sessionforce, name) is getattr(__import__(module, fromlist=[name]), name)
