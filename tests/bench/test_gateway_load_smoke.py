"""bench.gateway_load in its smoke size: the run completes, its promise checks pass, its ratio line prints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_gateway_load_smoke() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("bench.gateway_load starts its own redis-server, which is not installed")
    result = subprocess.run([sys.executable, "-m", "bench.gateway_load", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=85, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "command: python -m bench.gateway_load --smoke" in out
    assert "checks: 423s at the emulator: 0; messages lost: 0; sent twice: 0; streams with a gap or repeat: 0; " \
        "turn ends seen other than once: 0; failed answers: 0" in out
    assert "RATIO gateway CPU per turn vs Conversation.send alone:" in out
