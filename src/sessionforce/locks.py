"""One turn at a time: a FIFO lock per conversation in this process, then the store's lease.

The local lock queues the turns of one process in arrival order (asyncio's lock is FIFO and does not
let a newcomer barge past waiters), so only one of them contends for the store's lease at a time. The
lease makes turns exclusive across processes and machines; it is renewed while a long turn runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass

from sessionforce._logging import log_context
from sessionforce.errors import ConversationBusy, LeaseLost, StoreUnavailable
from sessionforce.store.base import Lease, Store

__all__ = ["LocalLocks", "TurnLock", "worker_identity"]

logger = logging.getLogger("sessionforce.conversation")


_HOST = socket.gethostname()


def worker_identity() -> str:
    """``host:pid``: who holds a lease, for reports of interrupted turns (the pid is read each time: a
    forked worker is someone else)."""
    return f"{_HOST}:{os.getpid()}"


@dataclass(slots=True)
class _Slot:
    lock: asyncio.Lock
    users: int = 0


class LocalLocks:
    """FIFO locks by conversation id, dropped when nobody holds or waits for them (bounded memory)."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    async def acquire(self, key: str, wait: float) -> _Slot:
        """Take the lock for ``key``, waiting at most ``wait`` seconds (then :class:`ConversationBusy`).
        Give it back with :meth:`release`. (Plain methods, not a context manager: this runs every turn.)"""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(asyncio.Lock())
        slot.users += 1
        try:
            if slot.lock.locked():
                async with asyncio.timeout(wait):
                    await slot.lock.acquire()
            else:
                await slot.lock.acquire()
        except BaseException as exc:
            self._leave(key, slot)
            if isinstance(exc, TimeoutError):
                raise ConversationBusy(
                    f"Conversation {key!r} stayed busy for {wait:.1f}s: earlier turns in this process are "
                    "still running. What to do: retry later, or raise lock_wait."
                ) from None
            raise
        return slot

    def release(self, key: str, slot: _Slot) -> None:
        """Give back a lock taken with :meth:`acquire`."""
        slot.lock.release()
        self._leave(key, slot)

    def _leave(self, key: str, slot: _Slot) -> None:
        slot.users -= 1
        if slot.users == 0:
            del self._slots[key]


class TurnLock:
    """Holds the store lease for one turn and renews it if the turn outlasts a third of its ttl."""

    def __init__(self, store: Store, conversation_id: str, *, ttl: float, owner: str) -> None:
        self._store = store
        self._conversation_id = conversation_id
        self._ttl = ttl
        self._owner = owner
        self.lease: Lease | None = None
        self._renew_handle: asyncio.TimerHandle | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.lost: BaseException | None = None

    @property
    def fence(self) -> int:
        """The fencing token writes made under this lease must carry."""
        if self.lease is None:
            raise LeaseLost("No lease is held for this turn.")
        return self.lease.fence

    async def acquire(self, wait: float) -> Lease:
        """Take the lease, waiting at most ``wait`` seconds."""
        self.lease = await self._store.acquire(self._conversation_id, owner=self._owner, ttl=self._ttl, wait=wait)
        # A timer, not a task: most turns end long before a renewal is due, and a timer costs far less.
        self._renew_handle = asyncio.get_running_loop().call_later(self._ttl / 3, self._start_renewer)
        return self.lease

    def _start_renewer(self) -> None:
        self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while self.lease is not None:
            try:
                self.lease = await self._store.renew(self.lease, ttl=self._ttl)
            except (LeaseLost, StoreUnavailable) as exc:
                self.lost = exc
                logger.warning("lost the turn lease on %s: %s", self._conversation_id, exc, extra=log_context())
                return
            await asyncio.sleep(self._ttl / 3)

    async def stop_renewing(self) -> None:
        """Stop renewing the lease (before the save that gives it up, so no renewal races that save)."""
        if self._renew_handle is not None:
            self._renew_handle.cancel()
            self._renew_handle = None
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def release(self) -> None:
        """Stop renewing and give the lease up (nothing to give up after a save that released it)."""
        await self.stop_renewing()
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await self._store.release(lease)
            except StoreUnavailable as exc:
                # The lease expires by itself after its ttl; nothing else depends on this release.
                logger.warning("could not release the turn lease: %s", exc, extra=log_context())
