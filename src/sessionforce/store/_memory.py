"""`MemoryStore`: conversation state in this process's memory (tests, scripts, single-process apps).

Records are kept as the objects saved (the conversation layer never changes a record after saving it;
it builds a new one with ``replace``). A conversation's transcript is kept as JSON Lines in one
``bytearray``: no tree of dicts, not even a list, so nothing in it is an object the garbage collector
has to walk, which keeps a long-running process's memory and collector pauses small.

Fences are a counter per conversation (kept after delete): this store's state lives exactly as long as
the leases it handed out, so it cannot lose one and hand its fence out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from sessionforce.errors._build import lease_lost, stale_record
from sessionforce.store._lease_wait import check_ttl, check_write
from sessionforce.store._protocol import Store
from sessionforce.store._records import (
    ConversationRecord,
    ConversationStatus,
    Held,
    Lease,
    TranscriptEntry,
    next_fence,
)

__all__ = ["MemoryStore"]


class MemoryStore(Store):
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

    def _check_lease(self, conversation_id: str, lease: Lease) -> None:
        held = self._leases.get(conversation_id)
        if held is None or held.fence != lease.fence or held.owner != lease.owner or held.expires_at <= self._clock():
            raise lease_lost(conversation_id, lease)

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        return self._records.get(conversation_id)

    async def save(
        self,
        record: ConversationRecord,
        *,
        lease: Lease | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: bool = False,
    ) -> ConversationRecord:
        """Compare-and-save by version under the exact lease (appending ``transcript``, then giving the
        lease up with ``release``); see :class:`~sessionforce.store.Store`."""
        cid = record.conversation_id
        check_write(cid, lease, release)
        if lease is not None:
            self._check_lease(cid, lease)
        current = self._records.get(cid)
        stored_version = current.version if current is not None else 0
        if stored_version != record.version:
            raise stale_record(cid, record.version, stored_version)
        lines = _lines(transcript)  # before any change: an entry that cannot be stored changes nothing
        saved = record.replace(version=record.version + 1)
        self._records[cid] = saved
        if lines:
            self._append(cid, lines)
        if release and lease is not None:
            self._release(lease)
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, lease: Lease | None = None
    ) -> None:
        """Append one transcript entry (with ``lease``: only while it is exactly the current one)."""
        check_write(conversation_id, lease)
        if lease is not None:
            self._check_lease(conversation_id, lease)
        self._append(conversation_id, _lines((entry,)))

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        lines = bytes(self._transcripts.get(conversation_id, b"")).splitlines()  # JSON escapes line breaks
        return [TranscriptEntry.from_json(line) for line in lines]

    def _append(self, conversation_id: str, lines: bytes) -> None:
        buffer = self._transcripts.get(conversation_id)
        if buffer is None:
            buffer = self._transcripts[conversation_id] = bytearray()
        buffer += lines

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
        """Forget the record, its transcript and its lease (the fence counter stays)."""
        self._records.pop(conversation_id, None)
        self._transcripts.pop(conversation_id, None)
        if self._leases.pop(conversation_id, None) is not None:
            self._wake(conversation_id)

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """A new lease, or how long the current holder's lasts (see :class:`~sessionforce.store.Store`)."""
        check_ttl(ttl)
        now = self._clock()
        held = self._leases.get(conversation_id)
        if held is not None and held.expires_at > now and held.owner != owner:
            return Held(held.expires_at - now, held.owner)
        fence = self._fences[conversation_id] = next_fence(self._fences.get(conversation_id, 0))
        lease = self._leases[conversation_id] = Lease(conversation_id, owner, fence, now + ttl)
        return lease

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (protocol)
        """Return at the conversation's next release here, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        event = self._released.get(conversation_id)
        if event is None:
            event = self._released[conversation_id] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend ``lease``; ``LeaseLost`` unless it is exactly the current, unexpired one."""
        check_ttl(ttl)
        self._check_lease(lease.conversation_id, lease)
        renewed = Lease(lease.conversation_id, lease.owner, lease.fence, self._clock() + ttl)
        self._leases[lease.conversation_id] = renewed
        return renewed

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up; a no-op unless it is exactly the current one."""
        self._release(lease)

    def _release(self, lease: Lease) -> None:
        held = self._leases.get(lease.conversation_id)
        if held is not None and held.fence == lease.fence and held.owner == lease.owner:
            del self._leases[lease.conversation_id]
            self._wake(lease.conversation_id)

    def _wake(self, conversation_id: str) -> None:
        event = self._released.pop(conversation_id, None)
        if event is not None:
            event.set()

    async def aclose(self) -> None:
        """Nothing to close."""


def _lines(entries: Sequence[TranscriptEntry]) -> bytes:
    return b"".join(entry.to_json().encode() + b"\n" for entry in entries) if entries else b""
