"""bench.otel_cost in its smoke size: every mode runs and prints its ratio to telemetry off (targets are
not asserted: this machine is small and noisy; the real numbers are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bench.otel_cost", "--smoke", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=55, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "command: python -m bench.otel_cost" in result.stdout
    return result.stdout


@pytest.mark.timeout(60)
def test_otel_cost_smoke() -> None:
    out = _run()
    for mode in ("off", "noop", "batch"):
        assert f"{mode:>6}: " in out
    assert "RATIO otel cost | noop vs off: " in out
    assert "RATIO otel cost | batch vs off: " in out


@pytest.mark.timeout(60)
def test_otel_cost_runs_without_opentelemetry() -> None:
    out = _run("--modes", "off", "--no-otel")
    assert "   off: " in out
    assert "RATIO" not in out
