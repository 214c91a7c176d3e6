"""The promises table of docs/reliability.md names the tests that prove each promise: every name must exist.

A renamed or deleted test would otherwise leave a promise that reads as proved and is not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"

# `conversation/test_outcomes.py::test_name` (paths relative to tests/), as the docs write them.
REFERENCE = re.compile(r"`((?:[\w-]+/)*test_\w+\.py)::(test_\w+)`")


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_test_named_in_the_docs_exists() -> None:
    missing: list[str] = []
    count = 0
    for doc in sorted(DOCS.glob("*.md")):
        for file, name in REFERENCE.findall(doc.read_text(encoding="utf-8")):
            count += 1
            path = TESTS / file
            if not path.is_file() or name not in _test_functions(path):
                missing.append(f"{doc.name}: {file}::{name}")
    assert count > 100, f"only {count} test references found in docs/: has the table's format changed?"
    assert not missing, "tests named in docs/ that do not exist:\n" + "\n".join(missing)
