"""Every construction of a client, a conversation and a store in the adversarial suite, in one place.

Tests import only from here and from public error names, so a change of layout or of construction
(issue 12 moved the wire client to ``sessionforce.agent_api``, stores to ``sessionforce.store`` and
conversations to a ``Conversations(client, store=...)`` manager) is one edit, in this file.

``client(...)``/``emulator_client(...)`` give an :class:`Owner`: the wire client (its calls, e.g.
``owner.start_session()``, pass straight through) together with the conversations manager on the test's
store; ``conversation(owner, id, **options)`` is ``owner.conversations.get(id, **options)``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sessionforce import AsyncAgentClient, Conversations, RetryPolicy, Timeouts
from sessionforce.emulator import RunningEmulator
from sessionforce.lifecycle import Conversation
from sessionforce.lifecycle import reap_idle as _reap_idle
from sessionforce.store import MemoryStore, SQLiteStore, Store, open_store

__all__ = [
    "Owner",
    "Store",
    "client",
    "conversation",
    "emulator_client",
    "memory_store",
    "no_retries",
    "open_store",
    "reap_idle",
    "redis_store",
    "sqlite_store",
    "timeouts",
]


def timeouts(**fields: float) -> Timeouts:
    """``Timeouts`` with the given fields (``turn=`` is the overall turn deadline issue 11 asks for)."""
    return Timeouts(**fields)


def no_retries() -> RetryPolicy:
    """A retry policy that never retries (keeps fault tests short and their request counts exact)."""
    return RetryPolicy(max_retries=0)


class Owner:
    """A test's wire client and its conversations manager (on the test's store). Use ``async with``:
    leaving closes both (a store passed in as an object is the test's to close)."""

    def __init__(self, wire: AsyncAgentClient, store: Store | str | None) -> None:
        self.client = wire
        self.conversations = Conversations(wire, store=store if store is not None else MemoryStore())

    @property
    def store(self) -> Store:
        """The store the conversations use."""
        return self.conversations.store

    def __getattr__(self, name: str) -> Any:
        # The wire client's calls and attributes (start_session, send_message, settings, ...).
        return getattr(self.client, name)

    def __repr__(self) -> str:
        return f"{self.client!r} {self.conversations!r}"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.conversations.aclose()
        finally:
            await self.client.aclose()


def client(url: str, *, client_id: str = "hostile-client", secret: str = "hostile-secret",
           agent_id: str = "0XxHOSTILE0000001", store: Store | str | None = None, **kwargs: Any) -> Owner:
    """A client whose My Domain and API host are both ``url`` (the hostile server, or any emulator)."""
    wire = AsyncAgentClient(my_domain=url, client_id=client_id, client_secret=secret, agent_id=agent_id,
                            base_url=url, **kwargs)
    return Owner(wire, store)


def emulator_client(emu: RunningEmulator, *, agent_id: str | None = None, secret: str | None = None,
                    store: Store | str | None = None, **kwargs: Any) -> Owner:
    """A client on ``emu`` (its default agent unless ``agent_id``)."""
    wire = AsyncAgentClient(my_domain=emu.url, client_id=emu.client_id, client_secret=secret or emu.client_secret,
                            agent_id=agent_id or emu.default_agent_id, **kwargs)
    return Owner(wire, store)


def conversation(owner: Owner, conversation_id: str, **options: Any) -> Conversation:
    """The conversation ``conversation_id`` (options: ``lock_wait``, ``lease_ttl``, ``resume``, ...)."""
    return owner.conversations.get(conversation_id, **options)


def memory_store() -> Store:
    """A fresh in-memory store."""
    return MemoryStore()


def sqlite_store(path: str | Path, **kwargs: Any) -> Store:
    """A SQLite store on ``path`` (``busy_timeout=`` seconds, ...)."""
    return SQLiteStore(path, **kwargs)


def redis_store(url: str, *, prefix: str | None = None, **client_kwargs: Any) -> Store:
    """A Redis store on ``url``; extra arguments go to redis-py (``socket_timeout=``...)."""
    from sessionforce.store import RedisStore

    if prefix is not None:
        return RedisStore.from_url(url, prefix=prefix, **client_kwargs)
    return RedisStore.from_url(url, **client_kwargs)


async def reap_idle(owner: Owner, *, idle_for: float) -> list[str]:
    """One pass of the reaper over ``owner``'s store; the ids of the conversations it ended."""
    return await _reap_idle(owner.conversations, idle_for=idle_for)
