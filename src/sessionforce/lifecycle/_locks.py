"""One turn at a time: a FIFO lock per conversation in this process, then the store's lease.

The local lock queues the turns of one process in arrival order (asyncio's lock is FIFO and does not
let a newcomer barge past waiters), so only one of them contends for the store's lease at a time. The
lease makes turns exclusive across processes and machines; it is renewed while a long turn runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from dataclasses import dataclass

from sessionforce._logging import log_context
from sessionforce.errors import ConversationBusy, LeaseLost, StoreUnavailable
from sessionforce.store import Lease, Store

__all__ = ["LeaseKeeper", "LocalLocks", "TurnLock", "worker_identity"]

logger = logging.getLogger("sessionforce.conversation")


_HOST = socket.gethostname()
_identity: tuple[int, str] = (0, "")


def worker_identity() -> str:
    """``host:pid``: who holds a lease, for reports of interrupted turns (the pid is read each time: a
    forked worker is someone else)."""
    global _identity
    pid = os.getpid()
    if _identity[0] != pid:
        _identity = (pid, f"{_HOST}:{pid}")
    return _identity[1]


@dataclass(slots=True)
class _Waiters:
    """The lock of a conversation whose turn has others waiting behind it (FIFO), and how many hold or
    wait for it."""

    lock: asyncio.Lock
    users: int


_FREE = object()


class LocalLocks:
    """FIFO locks by conversation id, dropped when nobody holds or waits for them (bounded memory).

    A turn nobody waits behind is marked by ``None`` alone; the lock object is made only when a second
    turn has to wait (thousands of turns in flight then cost no object each for the collector).
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Waiters | None] = {}
        self.keeper = LeaseKeeper()
        """Starts the renewal of the leases of this process's long turns."""

    def __len__(self) -> int:
        return len(self._slots)

    async def acquire(self, key: str, wait: float) -> None:
        """Take the lock for ``key``, waiting at most ``wait`` seconds (then :class:`ConversationBusy`).
        Give it back with :meth:`release`. (Plain methods, not a context manager: this runs every turn.)"""
        slot = self._slots.get(key, _FREE)
        if slot is _FREE:
            self._slots[key] = None
            return
        if slot is None:  # held, nobody waiting yet: make the lock, taken for the holder (it never waits)
            slot = self._slots[key] = _Waiters(asyncio.Lock(), users=1)
            await slot.lock.acquire()
        assert isinstance(slot, _Waiters)
        slot.users += 1
        try:
            async with asyncio.timeout(wait):
                await slot.lock.acquire()
        except BaseException as exc:
            self._leave(key, slot)
            if isinstance(exc, TimeoutError):
                raise ConversationBusy(
                    f"Conversation {key!r} stayed busy for {wait:.1f}s: earlier turns in this process are "
                    "still running. What to do: retry later, or raise lock_wait."
                ) from None
            raise

    def release(self, key: str) -> None:
        """Give back a lock taken with :meth:`acquire`."""
        slot = self._slots[key]
        if slot is None:
            del self._slots[key]
            return
        slot.lock.release()
        self._leave(key, slot)

    def _leave(self, key: str, slot: _Waiters) -> None:
        slot.users -= 1
        if slot.users == 0:
            del self._slots[key]


class LeaseKeeper:
    """Starts renewing the lease of each running turn that outlives a third of its ttl.

    One timer for all the turns on an event loop, set for the earliest renewal due, rather than a timer
    per turn: nearly every turn ends long before its renewal is due, and a busy process would otherwise
    fill the event loop's timer heap with thousands of cancelled timers, which every other timer
    (aiohttp's read timeouts among them) then pays for.
    """

    def __init__(self) -> None:
        self._due: dict[TurnLock, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._due)

    def watch(self, lock: TurnLock, ttl: float) -> None:
        """Renew ``lock`` from a third of ``ttl`` from now on, unless :meth:`forget` comes first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's timer went with it
            self._loop, self._timer, self._timer_at = loop, None, math.inf
            self._due.clear()
        due = loop.time() + ttl / 3
        self._due[lock] = due
        if due < self._timer_at:
            self._schedule(loop, due)

    def forget(self, lock: TurnLock) -> None:
        """``lock``'s turn is over (a timer set for it finds nothing to do and is not set again)."""
        self._due.pop(lock, None)

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._tick), at

    def _tick(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due_ones = [lock for lock, due in self._due.items() if due <= now]
        for lock in due_ones:
            del self._due[lock]
            lock.start_renewing()
        if self._due:
            self._schedule(loop, min(self._due.values()))


class TurnLock:
    """Holds the store lease for one turn; its keeper has it renewed if the turn outlives a third of its ttl."""

    def __init__(self, store: Store, conversation_id: str, *, ttl: float, owner: str, keeper: LeaseKeeper) -> None:
        self._store = store
        self._conversation_id = conversation_id
        self._ttl = ttl
        self._owner = owner
        self._keeper = keeper
        self.lease: Lease | None = None
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
        self._keeper.watch(self, self._ttl)
        return self.lease

    def start_renewing(self) -> None:
        """Renew the lease every third of its ttl until the turn ends (called by the keeper)."""
        if self.lease is not None and self._renewer is None:
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

    def stop_renewing(self) -> None:
        """Stop renewing the lease (before the save that gives it up). A renewal already under way is
        cancelled; should it land anyway, it only extends a lease the save then gives up."""
        self._keeper.forget(self)
        if self._renewer is not None:
            self._renewer.cancel()

    async def release(self) -> None:
        """Stop renewing and give the lease up (nothing to give up after a save that released it)."""
        self.stop_renewing()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await self._store.release(lease)
            except StoreUnavailable as exc:
                # The lease expires by itself after its ttl; nothing else depends on this release.
                logger.warning("could not release the turn lease: %s", exc, extra=log_context())
