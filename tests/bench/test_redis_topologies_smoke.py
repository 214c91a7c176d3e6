"""bench.redis_topologies runs in its smoke size (one node, replicated, Sentinel, Cluster; wait_replicas off
and on) and prints its ratio lines. Figures are not asserted: this machine is small and noisy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
                                reason="needs redis-server and redis-cli")


@pytest.mark.timeout(90)
def test_redis_topologies_smoke() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.redis_topologies", "--smoke"], cwd=ROOT,
                            capture_output=True, text=True, timeout=85, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "command: python -m bench.redis_topologies --smoke" in out
    assert "machine: " in out
    for name in ("single", "replicated", "replicated+wait1", "sentinel", "sentinel+wait1", "cluster", "cluster+wait1"):
        assert f"\n{name} " in out, out
    for where in ("one at a time", "10 in flight"):
        for name in ("replicated", "sentinel", "cluster"):
            assert f"RATIO redis topologies {where} | {name} vs single, our CPU per turn: " in out, out
