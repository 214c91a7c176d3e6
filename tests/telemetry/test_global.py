"""The default ``Telemetry``: OpenTelemetry's global providers, looked up lazily (so one set after the
client was made is used), and a silent no-op when opentelemetry is not installed. In subprocesses: the
global providers can be set once per process, and the other tests must never see them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.telemetry.global_run", mode], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.timeout(90)
def test_global_providers_set_after_the_client_are_used() -> None:
    result = run("global")
    assert result["turns"] == [1]  # the turn before the providers were set was not recorded anywhere
    assert result["spans"] == sorted([
        "invoke_agent 0XxSF0000000DEMOAA", "lease acquire", "store load", "store save", "store save",
        "POST /sessions/{id}/messages",
    ])


@pytest.mark.timeout(90)
def test_without_opentelemetry_everything_is_a_no_op() -> None:
    result = run("absent")
    assert result == {"text": "You said: message 1", "tracer": "None", "instruments": "None"}
