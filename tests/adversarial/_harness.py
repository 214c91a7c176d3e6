"""Every construction of a client, a conversation and a store in the adversarial suite, in one place.

The package layout is moving (issue 12: ``sessionforce.agent_api``, ``sessionforce.store``, a
``Conversations(client, store=...)`` manager in ``sessionforce.lifecycle``): when it lands, this module is
the one edit the suite needs. Tests import only from here and from public error names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionforce import AsyncAgentClient, RetryPolicy, Timeouts
from sessionforce.emulator import RunningEmulator
from sessionforce.store import MemoryStore, Store, open_store

__all__ = [
    "AsyncAgentClient",
    "MemoryStore",
    "Store",
    "Timeouts",
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


def client(url: str, *, client_id: str = "hostile-client", secret: str = "hostile-secret",
           agent_id: str = "0XxHOSTILE0000001", **kwargs: Any) -> AsyncAgentClient:
    """A client whose My Domain and API host are both ``url`` (the hostile server, or any emulator)."""
    kwargs.setdefault("store", MemoryStore())
    return AsyncAgentClient(my_domain=url, client_id=client_id, client_secret=secret, agent_id=agent_id,
                            base_url=url, **kwargs)


def emulator_client(emu: RunningEmulator, *, agent_id: str | None = None, secret: str | None = None,
                    **kwargs: Any) -> AsyncAgentClient:
    """A client on ``emu`` (its default agent unless ``agent_id``)."""
    kwargs.setdefault("store", MemoryStore())
    return AsyncAgentClient(my_domain=emu.url, client_id=emu.client_id,
                            client_secret=secret or emu.client_secret,
                            agent_id=agent_id or emu.default_agent_id, **kwargs)


def conversation(owner: AsyncAgentClient, conversation_id: str, *, store: Store | None = None,
                 **options: Any) -> Any:
    """The conversation ``conversation_id`` (options: ``lock_wait``, ``lease_ttl``, ``resume``, ...)."""
    if store is not None:
        options["store"] = store
    return owner.conversation(conversation_id, **options)


def store_of(owner: AsyncAgentClient) -> Store:
    """The store conversations of ``owner`` use."""
    return owner.store


def memory_store() -> Store:
    """A fresh in-memory store."""
    return MemoryStore()


def sqlite_store(path: str | Path, **kwargs: Any) -> Store:
    """A SQLite store on ``path`` (``busy_timeout=`` seconds, ...)."""
    from sessionforce.store.sqlite import SQLiteStore

    return SQLiteStore(path, **kwargs)


def redis_store(url: str, *, prefix: str | None = None, **client_kwargs: Any) -> Store:
    """A Redis store on ``url``; extra arguments go to redis-py (``socket_timeout=``...)."""
    from sessionforce.store.redis import RedisStore

    if prefix is not None:
        return RedisStore.from_url(url, prefix=prefix, **client_kwargs)
    return RedisStore.from_url(url, **client_kwargs)


async def reap_idle(owner: AsyncAgentClient, store: Store, *, idle_for: float) -> list[str]:
    """One pass of the reaper over ``store``; the ids of the conversations it ended."""
    from sessionforce.reaper import reap_idle as reap

    return await reap(owner, store, idle_for=idle_for)
