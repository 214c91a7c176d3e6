"""Shared fixtures: an emulator on a free loopback port, clients pointed at it, and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sessionforce import AgentClient, AsyncAgentClient, BlockingConversations, Conversations
from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.store import MemoryStore
from tests.redis_server import delete_prefix, redis_url_or_skip, unique_prefix
from tests.support import Admin, client_kwargs


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    """A fresh emulator (demo agent) for one test."""
    with run_emulator() as running:
        yield running


@pytest.fixture
def admin(emu: RunningEmulator) -> Iterator[Admin]:
    """The emulator's admin surface over plain httpx."""
    a = Admin(emu.url)
    yield a
    a.http.close()


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[AsyncAgentClient]:
    """An async client on the emulator."""
    async with AsyncAgentClient(**client_kwargs(emu)) as c:
        yield c


@pytest.fixture
async def conversations(client: AsyncAgentClient) -> AsyncIterator[Conversations]:
    """Conversations over ``client``, with an in-memory store."""
    async with Conversations(client, store=MemoryStore()) as c:
        yield c


@pytest.fixture
def sync_client(emu: RunningEmulator) -> Iterator[AgentClient]:
    """A blocking client on the emulator."""
    with AgentClient(**client_kwargs(emu)) as c:
        yield c


@pytest.fixture
def sync_conversations(sync_client: AgentClient) -> Iterator[BlockingConversations]:
    """Blocking conversations over ``sync_client``, with an in-memory store."""
    with BlockingConversations(sync_client, store=MemoryStore()) as c:
        yield c


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL on loopback (REDIS_URL, 127.0.0.1:6379, or a throwaway redis-server); skipped if none
    (failed under CI, which must never skip the Redis tests)."""
    yield from redis_url_or_skip()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix for one test; every key under it is deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    delete_prefix(redis_url, prefix)
