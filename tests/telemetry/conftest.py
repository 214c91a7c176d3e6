"""Fixtures: per-test OpenTelemetry providers, and conversations recording to them over the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sessionforce import AsyncAgentClient, Conversations, RetryPolicy
from sessionforce.emulator import RunningEmulator
from sessionforce.store import MemoryStore
from tests.support import client_kwargs
from tests.telemetry.otel import Otel

FAST_RETRIES = RetryPolicy(backoff_initial=0.01, locked_wait=5)
"""Retries and 423 waits in milliseconds, so the scripted faults cost no time."""


@pytest.fixture
def otel() -> Iterator[Otel]:
    recorder = Otel()
    yield recorder
    recorder.shutdown()


@pytest.fixture
async def traced_client(emu: RunningEmulator, otel: Otel) -> AsyncIterator[AsyncAgentClient]:
    async with AsyncAgentClient(**client_kwargs(emu), retry=FAST_RETRIES, telemetry=otel.telemetry) as client:
        yield client


@pytest.fixture
async def traced(traced_client: AsyncAgentClient) -> AsyncIterator[Conversations]:
    """Conversations recording to ``otel`` (through their client's telemetry), with an in-memory store."""
    async with Conversations(traced_client, store=MemoryStore()) as conversations:
        yield conversations
