"""Each benchmark runs in its smoke size and prints its ratio lines. Targets are NOT asserted: this
machine is small and noisy, and timed assertions would flake. The real numbers are in docs/benchmarks.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(name: str, timeout: float) -> str:
    result = subprocess.run([sys.executable, "-m", f"bench.{name}", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"bench.{name} --smoke failed:\n{result.stdout}\n{result.stderr}"
    assert "command: python -m bench." in result.stdout
    assert "machine: " in result.stdout
    return result.stdout


def test_client_overhead_smoke() -> None:
    out = _run("client_overhead", 50)
    assert "RATIO one at a time | Conversation.send (memory) vs bare aiohttp:" in out
    assert "RATIO one at a time | Conversation.send (sqlite) vs bare aiohttp:" in out
    assert "in flight | Conversation.send (memory) vs bare aiohttp:" in out
    assert "RATIO blocking, one at a time | AgentClient.send_message vs requests.Session:" in out


@pytest.mark.timeout(60)
def test_scale_smoke() -> None:
    out = _run("scale", 55)
    assert "sessionforce Conversation.send, burst" in out
    assert "peak RSS:" in out
    assert "RATIO scale | bytes per idle conversation" in out


def test_emulator_capacity_smoke() -> None:
    out = _run("emulator_capacity", 50)
    assert "RATIO emulator capacity | emulator vs minimal app:" in out


def test_streaming_smoke() -> None:
    out = _run("streaming", 50)
    assert "RATIO streaming first byte -> first text | sessionforce vs bare:" in out


def test_lifecycle_cost_smoke() -> None:
    for store in ("memory", "sqlite"):
        result = subprocess.run([sys.executable, "-m", "bench.lifecycle_cost", "--smoke", "--store", store], cwd=ROOT,
                                capture_output=True, text=True, timeout=50, check=False)
        assert result.returncode == 0, result.stderr
        assert f"store: {store}" in result.stdout
        assert "lifecycle CPU per turn (median):" in result.stdout


@pytest.mark.timeout(90)
def test_store_cost_smoke(postgres_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "bench.store_cost", "--smoke", "--postgres-url", postgres_url],
                            cwd=ROOT, capture_output=True, text=True, timeout=85, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "command: python -m bench.store_cost" in out
    for store in ("sqlite", "postgres", "postgres-async"):
        assert f"\n{store} " in out, out
    assert "RATIO store cost one at a time | postgres vs sqlite" in out
    assert "RATIO queued-turn wait | postgres notify vs polling (median):" in out
    if shutil.which("redis-server"):
        assert "RATIO store cost 50 in flight | redis vs sqlite" in out


@pytest.mark.timeout(300)
def test_instructions_smoke() -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing: .ci/run installs it (apt-get install valgrind)")
        pytest.skip("valgrind is not installed (apt-get install valgrind); CI installs it")
    out = _run("instructions", 290)  # four runs under valgrind: mostly start-up
    assert "## this tree" in out
    match = re.search(r"RATIO instructions this tree \| memory vs bare: (\d+\.\d+)x", out)
    assert match is not None, out
    assert float(match.group(1)) > 1.0  # the lifecycle runs more code than a bare post, never less
