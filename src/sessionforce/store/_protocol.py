"""The session store protocol (v2): the atomic steps every store implements (see :mod:`._records`).

A store writes only atomic steps; waiting for a held lease is one loop shared by every store
(:func:`~sessionforce.store.acquire_lease`), which :meth:`Store.acquire` calls. Subclass :class:`Store`
to inherit that ``acquire``, or define it as that one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sessionforce.store._lease_wait import acquire_lease
from sessionforce.store._records import ConversationRecord, ConversationStatus, Lease, TranscriptEntry

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """Where conversation state lives. Implementations: memory, SQLite, Redis.

    Every method may raise :class:`~sessionforce.errors.StoreUnavailable` when the backend cannot be used
    (its message never claims anything about a turn's delivery: the store does not know it), and
    :class:`~sessionforce.errors.CorruptRecord` when what it holds for a conversation cannot be read.
    A value that cannot be stored (a lone surrogate in an id or a text) raises
    :class:`~sessionforce.errors.InvalidArgument`.
    """

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        ...

    async def save(
        self,
        record: ConversationRecord,
        *,
        lease: Lease | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: bool = False,
    ) -> ConversationRecord:
        """Compare-and-save: store ``record`` if the stored version equals ``record.version`` (0: must not
        exist yet), and return it with ``version + 1``. ``transcript`` entries are appended in the same
        atomic step (so a record and its transcript never disagree). With ``lease``, the save is accepted
        only while exactly that lease (owner and fence, unexpired) is the conversation's current one, and
        ``release=True`` gives it up in that same step (a turn's last save ends its lease without a write
        of its own). ``lease=None`` is an unfenced write (tools, tests). A refused save changes nothing,
        the lease included.

        Raises :class:`~sessionforce.errors.LeaseLost` when ``lease`` is not the current lease (checked
        first) and :class:`~sessionforce.errors.StaleRecord` on a version mismatch.
        """
        ...

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, lease: Lease | None = None
    ) -> None:
        """Append one transcript entry (with ``lease``: only while it is exactly the current lease)."""
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
        """Records filtered by status and by ``last_activity_at <= now - idle_for``, oldest activity first.
        A record that cannot be read is left out (and logged), so it never hides the others."""
        ...

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (fences handed out stay dead)."""
        ...

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """One atomic step: a new lease for ``ttl`` seconds, its fence above every fence handed out
        before; or, while another owner holds a live lease, the seconds until it expires (> 0; a
        :class:`~sessionforce.store.Held` also names that owner). A live lease held by ``owner`` itself is
        taken again with a new fence: an owner runs one turn on a conversation at a time, so a lease of
        its own is one it lost track of (a release or an acquire that failed on the way back)."""
        ...

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (a bound, not a deadline)
        """Return when the conversation's lease may have been released (a notification), or after
        ``timeout`` seconds. Spurious wake-ups are fine; a store without notifications sleeps."""
        ...

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the conversation's lease, waiting up to ``wait`` seconds for the holder to release it or
        for its lease to expire; :class:`~sessionforce.errors.ConversationBusy` after ``wait``. (The shared
        loop, :func:`~sessionforce.store.acquire_lease`: stores do not write their own.)"""
        return await acquire_lease(self, conversation_id, owner=owner, ttl=ttl, wait=wait)

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend ``lease`` to ``ttl`` seconds from now; :class:`~sessionforce.errors.LeaseLost` unless it
        is exactly the current, unexpired lease."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (waking waiters); a no-op unless it is exactly the current lease."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...
