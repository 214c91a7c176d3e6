"""The examples in docs/gateway.md run as written: the Python blocks, and the curl walk-through against a
`sessionforce serve` with no org configured (the built-in emulator and its demo tokens)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.support import ROOT, serve_process

DOC = (ROOT / "docs" / "gateway.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)
BASH = re.findall(r"```bash\n(.*?)```", DOC, re.DOTALL)


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{n}" for n in range(len(PYTHON))])
def test_python_examples_run(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_the_curl_walkthrough_talks_to_the_demo_agent(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    walkthrough = next(block for block in BASH if "/v1/demo/token" in block)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SESSIONFORCE_"))}
    env.update(SESSIONFORCE_CONFIG=str(tmp_path / "none.toml"), HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path),
               PYTHONPATH=str(ROOT / "src"))
    with serve_process([], env, tmp_path / "serve.log") as gateway:
        script = walkthrough.replace("http://127.0.0.1:8000", gateway.url)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Tuesday to Saturday" in done.stdout
