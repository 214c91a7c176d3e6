"""Fixtures for the emulator tests (helpers live in emulator_wire.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_wire import Wire

from sessionforce.emulator import RunningEmulator


@pytest.fixture
def emu(sessionforce_emulator: RunningEmulator) -> RunningEmulator:
    """The shared, freshly reset emulator (from our own pytest plugin)."""
    return sessionforce_emulator


@pytest.fixture
def wire(emu: RunningEmulator) -> Iterator[Wire]:
    """A :class:`Wire` against the shared emulator."""
    client = Wire(emu)
    yield client
    client.close()
