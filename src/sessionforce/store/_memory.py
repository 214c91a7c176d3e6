"""`MemoryStore`: conversation state in this process's memory (tests, scripts, single-process apps).

Records are kept as the objects saved (the conversation layer never changes a record after saving it;
it builds a new one with ``replace``). A conversation's transcript is kept as JSON Lines in one
``bytearray``: no tree of dicts, not even a list, so nothing in it is an object the garbage collector
has to walk, which keeps a long-running process's memory and collector pauses small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from sessionforce.errors import ConversationBusy, InvalidArgument, LeaseLost, StaleRecord
from sessionforce.store._records import ConversationRecord, ConversationStatus, Lease, TranscriptEntry

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`~sessionforce.store.Store` in a dict. Safe for many tasks on one event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, ConversationRecord] = {}
        self._transcripts: dict[str, bytearray] = {}
        self._leases: dict[str, Lease] = {}
        self._fences: dict[str, int] = {}
        self._released: dict[str, asyncio.Event] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._records)} conversations)"

    def _check_fence(self, conversation_id: str, fence: int | None) -> None:
        if fence is None:
            return
        lease = self._leases.get(conversation_id)
        if lease is None or lease.fence != fence or lease.expires_at <= self._clock():
            raise LeaseLost(
                f"The lease on conversation {conversation_id!r} was lost (fence {fence}); the write was refused. "
                "What to do: nothing was overwritten; retry the turn, it will see the newer state."
            )

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        return self._records.get(conversation_id)

    async def save(
        self,
        record: ConversationRecord,
        *,
        fence: int | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: Lease | None = None,
    ) -> ConversationRecord:
        """Compare-and-save by version (appending ``transcript``, then giving ``release`` up); see
        :class:`~sessionforce.store.Store`."""
        self._check_fence(record.conversation_id, fence)
        current = self._records.get(record.conversation_id)
        stored_version = current.version if current is not None else 0
        if stored_version != record.version:
            raise StaleRecord(
                f"Conversation {record.conversation_id!r} was saved by someone else (version {stored_version}, "
                f"this write expected {record.version}). What to do: reload it and apply the change again."
            )
        saved = record.replace(version=record.version + 1)
        self._records[record.conversation_id] = saved
        if transcript:
            self._append(record.conversation_id, transcript)
        if release is not None:
            self._release(release)
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, fence: int | None = None
    ) -> None:
        """Append one transcript entry."""
        self._check_fence(conversation_id, fence)
        self._append(conversation_id, (entry,))

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        lines = bytes(self._transcripts.get(conversation_id, b"")).splitlines()  # JSON escapes line breaks
        return [TranscriptEntry.from_json(line) for line in lines]

    def _append(self, conversation_id: str, entries: Sequence[TranscriptEntry]) -> None:
        buffer = self._transcripts.get(conversation_id)
        if buffer is None:
            buffer = self._transcripts[conversation_id] = bytearray()
        for entry in entries:
            buffer += entry.to_json().encode()
            buffer += b"\n"

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        idle_for: float | None = None,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[ConversationRecord]:
        """Records filtered by status and idle time, oldest activity first."""
        cutoff = (now if now is not None else self._clock()) - idle_for if idle_for is not None else None
        found = [
            r
            for r in self._records.values()
            if (status is None or r.status == status) and (cutoff is None or r.last_activity_at <= cutoff)
        ]
        found.sort(key=lambda r: r.last_activity_at)
        return found[:limit]

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease."""
        self._records.pop(conversation_id, None)
        self._transcripts.pop(conversation_id, None)
        self._leases.pop(conversation_id, None)

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds for the holder to release it or expire."""
        if ttl <= 0:
            raise InvalidArgument(f"ttl must be a number of seconds greater than 0, got {ttl!r}.")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            now = self._clock()
            held = self._leases.get(conversation_id)
            if held is None or held.expires_at <= now:
                fence = self._fences.get(conversation_id, 0) + 1
                self._fences[conversation_id] = fence
                lease = Lease(conversation_id, owner, fence, now + ttl)
                self._leases[conversation_id] = lease
                return lease
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConversationBusy(
                    f"Conversation {conversation_id!r} stayed busy for {wait:.1f}s (a turn by {held.owner} holds it). "
                    "What to do: retry later, or raise the wait bound (lock_wait)."
                )
            event = self._released.setdefault(conversation_id, asyncio.Event())
            try:
                async with asyncio.timeout(min(remaining, max(held.expires_at - now, 0.001))):
                    await event.wait()
            except TimeoutError:
                pass

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease."""
        self._check_fence(lease.conversation_id, lease.fence)
        renewed = Lease(lease.conversation_id, lease.owner, lease.fence, self._clock() + ttl)
        self._leases[lease.conversation_id] = renewed
        return renewed

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op when it was lost."""
        self._release(lease)

    def _release(self, lease: Lease) -> None:
        held = self._leases.get(lease.conversation_id)
        if held is not None and held.fence == lease.fence:
            del self._leases[lease.conversation_id]
            event = self._released.pop(lease.conversation_id, None)
            if event is not None:
                event.set()

    async def aclose(self) -> None:
        """Nothing to close."""
