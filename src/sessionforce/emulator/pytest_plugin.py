"""pytest plugin (entry point ``sessionforce_emulator``): the ``sessionforce_emulator`` fixture.

One emulator (demo agent, default settings) is started per test session and reset before every
test, so each test sees no sessions, tokens, counters or faults and an unshifted clock. Starting one
takes ~20 ms but stopping one ~100 ms (uvicorn's drain), which a shared server avoids paying per test.
Tests that need other settings (agents, idle timeout, limits) use ``run_emulator(...)`` directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionforce.emulator.server import RunningEmulator, run_emulator


@pytest.fixture(scope="session")
def sessionforce_emulator_server() -> Iterator[RunningEmulator]:
    """The shared emulator behind :func:`sessionforce_emulator` (not reset between tests)."""
    with run_emulator() as emulator:
        yield emulator


@pytest.fixture
def sessionforce_emulator(sessionforce_emulator_server: RunningEmulator) -> RunningEmulator:
    """A running emulator with the demo agent, freshly reset for this test."""
    sessionforce_emulator_server.reset()
    return sessionforce_emulator_server
