"""Shared fixtures: an emulator on a free loopback port, and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.support import Admin, client_kwargs

from sessionforce import AgentClient, AsyncAgentClient
from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.store import MemoryStore


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    """A fresh emulator (demo agent) for one test."""
    with run_emulator() as running:
        yield running


@pytest.fixture
def admin(emu: RunningEmulator) -> Iterator[Admin]:
    a = Admin(emu.url)
    yield a
    a.http.close()


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[AsyncAgentClient]:
    async with AsyncAgentClient(**client_kwargs(emu), store=MemoryStore()) as c:
        yield c


@pytest.fixture
def sync_client(emu: RunningEmulator) -> Iterator[AgentClient]:
    with AgentClient(**client_kwargs(emu), store=MemoryStore()) as c:
        yield c
