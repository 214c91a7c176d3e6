"""The scope of one turn: the conversation's lock held, its record loaded, its log context set."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from sessionforce._logging import enter_log_context, restore_log_context, update_log_context
from sessionforce.agent_api import Reply
from sessionforce.errors import StaleRecord
from sessionforce.lifecycle._locks import LocalLocks, TurnLock, worker_identity
from sessionforce.lifecycle._options import ConversationOptions
from sessionforce.store import ConversationRecord, Store, TranscriptEntry

__all__ = ["_Turn", "_messages"]


class _Owner(Protocol):
    """What a turn needs of its conversation (a protocol: the conversation module imports this one)."""

    conversation_id: str
    store: Store
    options: ConversationOptions
    _locks: LocalLocks
    _lock_key: str

    def _new_record(self) -> ConversationRecord: ...

    async def _load_existing(self) -> ConversationRecord: ...


class _Turn:
    """One turn's hold on its conversation, used as ``async with conversation._turn() as turn``.

    Entering takes the conversation's turn lock (FIFO in this process, then the store's lease), loads
    (or creates) the record and sets the log context; leaving undoes all of it in reverse order. In
    between, ``record`` is the current record and ``lock`` holds the fence every write carries.

    A class rather than ``@asynccontextmanager``: it runs on every turn, and a generator-based context
    manager costs an async generator (and the event loop's bookkeeping for it) each time.
    """

    __slots__ = ("_log", "conversation", "lock", "record")

    record: ConversationRecord
    lock: TurnLock

    def __init__(self, conversation: _Owner) -> None:
        self.conversation = conversation

    async def __aenter__(self) -> Self:
        conv = self.conversation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + conv.options.lock_wait
        await conv._locks.acquire(conv._lock_key, conv.options.lock_wait)
        lock = self.lock = TurnLock(
            conv.store, conv.conversation_id, ttl=conv.options.lease_ttl, owner=worker_identity(),
            keeper=conv._locks.keeper,
        )
        previous_log = enter_log_context(conversationId=conv.conversation_id)
        try:
            await lock.acquire(wait=max(0.0, deadline - loop.time()))
            record = await conv.store.load(conv.conversation_id)
            self.record = record or conv._new_record()
            if record is None:
                try:
                    await self.save()
                except StaleRecord:
                    self.record = await conv._load_existing()
            update_log_context(externalSessionKey=self.record.external_session_key, sessionId=self.record.session_id)
        except BaseException:
            restore_log_context(previous_log)
            try:
                await lock.release()
            finally:
                conv._locks.release(conv._lock_key)
            raise
        self._log = previous_log
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conv = self.conversation
        restore_log_context(self._log)
        try:
            await self.lock.release()
        finally:
            conv._locks.release(conv._lock_key)

    async def save(
        self, *, log: Sequence[TranscriptEntry] = (), release: bool = False, **changes: Any
    ) -> ConversationRecord:
        """Save the record with ``changes``, appending ``log`` to the transcript in the same atomic step.

        ``release``: this is the turn's last write; give the lease up with it (one store write fewer).
        """
        lock = self.lock
        if release:
            lock.stop_renewing()
        self.record = await self.conversation.store.save(
            self.record.replace(**changes), fence=lock.fence, transcript=log, release=lock.lease if release else None
        )
        if release:
            lock.lease = None  # given up by the save: nothing left for the turn's exit to release
        return self.record

    def entry(self, kind: str, **fields: Any) -> TranscriptEntry:
        """A transcript entry stamped now."""
        return TranscriptEntry(kind=kind, at=self.conversation.options.clock(), **fields)

    async def log(self, kind: str, **fields: Any) -> None:
        """Append one transcript entry on its own (when there is no record change to go with it)."""
        await self.conversation.store.append_transcript(
            self.record.conversation_id, self.entry(kind, **fields), fence=self.lock.fence
        )


def _messages(reply: Reply) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in reply.messages]
