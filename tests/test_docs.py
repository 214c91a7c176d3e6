"""The Python examples in the docs run as written (each in its own subprocess, on the embedded emulator)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = ["docs/lifecycle.md", "docs/stores.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, int, str]]:
    found = []
    for doc in RUNNABLE:
        for n, code in enumerate(BLOCK.findall((ROOT / doc).read_text())):
            found.append((doc, n, code))
    return found


@pytest.mark.parametrize(("doc", "n", "code"), examples(), ids=lambda v: str(v)[:20])
def test_example_runs(doc: str, n: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, f"{doc} example {n} failed:\n{done.stderr}"
    assert done.stdout.strip(), f"{doc} example {n} printed nothing"
