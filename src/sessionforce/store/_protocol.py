"""The session store protocol: the atomic steps every store implements (see :mod:`._records`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sessionforce.store._records import ConversationRecord, ConversationStatus, Lease, TranscriptEntry

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """Where conversation state lives. Implementations: memory, sqlite, redis.

    Every method may raise :class:`~sessionforce.errors.StoreUnavailable` when the backend is down.
    """

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        ...

    async def save(
        self,
        record: ConversationRecord,
        *,
        fence: int | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: Lease | None = None,
    ) -> ConversationRecord:
        """Compare-and-save: store ``record`` if the stored version equals ``record.version`` (0: must
        not exist yet), and return it with ``version + 1``. ``transcript`` entries are appended in the
        same atomic step (so a record and its transcript never disagree), and ``release``, when given,
        is given up in that step too, as :meth:`release` would (a turn's last save ends its lease
        without a write of its own). A refused save changes nothing, the lease included.

        Raises :class:`~sessionforce.errors.StaleRecord` on a version mismatch and
        :class:`~sessionforce.errors.LeaseLost` when ``fence`` is given and is not the current lease's.
        """
        ...

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, fence: int | None = None
    ) -> None:
        """Append one transcript entry (fenced like :meth:`save`)."""
        ...

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        ...

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        idle_for: float | None = None,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[ConversationRecord]:
        """Records filtered by status and by ``last_activity_at <= now - idle_for``, oldest activity first."""
        ...

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease."""
        ...

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the conversation's lease, waiting up to ``wait`` seconds for the holder to release it or
        for its lease to expire. Raises :class:`~sessionforce.errors.ConversationBusy` after ``wait``."""
        ...

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease; raises :class:`~sessionforce.errors.LeaseLost` if it is no longer held."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up (a no-op when it was already lost)."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...
