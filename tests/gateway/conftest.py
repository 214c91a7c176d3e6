"""Gateway fixtures: a gateway in a thread on the emulator (memory store), and a browser signed in to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionforce.emulator import RunningEmulator
from sessionforce.gateway import RunningGateway, run_gateway
from tests.gateway.support import Browser, make_config


@pytest.fixture
def gateway(emu: RunningEmulator) -> Iterator[RunningGateway]:
    """A gateway on the emulator's demo agent, memory store, the test API and signing keys."""
    with run_gateway(make_config(emu)) as running:
        yield running


@pytest.fixture
def browser(gateway: RunningGateway) -> Iterator[Browser]:
    """A browser with a token for one new conversation."""
    signed_in = Browser.signed_in(gateway.url)
    yield signed_in
    signed_in.close()
