"""One turn at a time: a FIFO lock per conversation in this process, then the store's lease.

The local lock queues the turns of one process in arrival order (asyncio's lock is FIFO and does not
let a newcomer barge past waiters), so only one of them contends for the store's lease at a time. The
lease makes turns exclusive across processes and machines; it is renewed while a long turn runs.

A lease this process could not give back (the store failed during the release, or during the save that
was to release it) is remembered with its owner and fence, and given back by the next turn on that
conversation before it takes a new one: a store hiccup never locks a process out of its own
conversation for a whole ``lease_ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sessionforce._logging import log_context
from sessionforce.errors import ConversationBusy, LeaseLost, StoreUnavailable
from sessionforce.errors._build import lease_lost
from sessionforce.store import Lease, Store, TranscriptEntry

__all__ = ["LeaseClock", "LeaseKeeper", "LocalLocks", "LoopClock", "TurnLock", "worker_identity"]

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


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


class LeaseClock(Protocol):
    """The time leases are renewed by: the event loop's (:class:`LoopClock`), or a fake one in tests,
    which then never wait on real time."""

    def time(self) -> float:
        """Now, in the clock's own seconds."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> _Cancellable:
        """Call ``callback`` at ``when`` (this clock's time) unless cancelled first."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class LoopClock:
    """The running event loop's clock: its timers and ``asyncio.sleep``."""

    __slots__ = ()

    def time(self) -> float:
        """The running loop's monotonic time."""
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """A loop timer (one heap entry, no task)."""
        return asyncio.get_running_loop().call_at(when, callback)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


_LOOP_CLOCK = LoopClock()


@dataclass(slots=True)
class _Waiters:
    """The lock of a conversation whose turn has others waiting behind it (FIFO), and how many hold or
    wait for it."""

    lock: asyncio.Lock
    users: int


_FREE = object()


_serials = itertools.count(1)


class LocalLocks:
    """FIFO locks by conversation id, dropped when nobody holds or waits for them (bounded memory).

    A turn nobody waits behind is marked by ``None`` alone; the lock object is made only when a second
    turn has to wait (thousands of turns in flight then cost no object each for the collector).

    The locks are also the store leases' owner (:attr:`owner`): a store lets a lease's own owner take it
    again (an acquire whose answer was lost must not lock it out), so the owner is exactly what runs one
    turn per conversation at a time, these locks, and never two managers that happen to share a process.
    """

    def __init__(self, *, keeper: LeaseKeeper | None = None) -> None:
        self._serial = next(_serials)
        self._owner: tuple[int, str] = (0, "")
        self._slots: dict[str, _Waiters | None] = {}
        self.keeper = keeper if keeper is not None else LeaseKeeper()
        """Starts the renewal of the leases of this process's long turns."""
        self.unreleased: dict[str, Lease] = {}
        """Leases this process holds but could not give back (the store failed), by lock key: the next
        turn on the conversation gives them back first."""
        self.unrecorded: dict[str, TranscriptEntry] = {}
        """The transcript entry of a turn whose outcome the store failed to record, by lock key: the next
        turn of this process on the conversation records it in place of a bare delivery-unknown."""

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def owner(self) -> str:
        """``host:pid/n``: the store leases' owner for the turns these locks run (re-read after a fork)."""
        pid, owner = self._owner
        if pid != os.getpid():
            self._owner = (os.getpid(), owner := f"{worker_identity()}/{self._serial}")
        return owner

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

    ``clock``: the time to renew by (default: the event loop's); the renewals of the turns it watches
    wait on it too.
    """

    def __init__(self, *, clock: LeaseClock | None = None) -> None:
        self.clock: LeaseClock = clock if clock is not None else _LOOP_CLOCK
        self._due: dict[TurnLock, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: _Cancellable | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._due)

    def watch(self, lock: TurnLock, ttl: float) -> None:
        """Renew ``lock`` from a third of ``ttl`` from now on, unless :meth:`forget` comes first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's timer went with it
            self._loop, self._timer, self._timer_at = loop, None, math.inf
            self._due.clear()
        due = self.clock.time() + ttl / 3
        self._due[lock] = due
        if due < self._timer_at:
            self._schedule(due)

    def forget(self, lock: TurnLock) -> None:
        """``lock``'s turn is over (a timer set for it finds nothing to do and is not set again)."""
        self._due.pop(lock, None)

    def _schedule(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.clock.call_at(at, self._tick), at

    def _tick(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.clock.time()
        due_ones = [lock for lock, due in self._due.items() if due <= now]
        for lock in due_ones:
            del self._due[lock]
            lock.start_renewing()
        if self._due:
            self._schedule(min(self._due.values()))


class TurnLock:
    """Holds the store lease for one turn; its keeper has it renewed if the turn outlives a third of its ttl.

    ``locks``: the process's :class:`LocalLocks`, whose keeper renews the lease and which remembers a
    lease that could not be given back; ``key`` names the conversation there.
    """

    __slots__ = ("_conversation_id", "_key", "_locks", "_owner", "_renewer", "_store", "_ttl", "lease", "lost")

    def __init__(
        self, store: Store, conversation_id: str, *, ttl: float, owner: str, locks: LocalLocks, key: str | None = None
    ) -> None:
        self._store = store
        self._conversation_id = conversation_id
        self._ttl = ttl
        self._owner = owner
        self._locks = locks
        self._key = key if key is not None else conversation_id
        self.lease: Lease | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.lost: BaseException | None = None

    @property
    def held(self) -> Lease:
        """The lease writes made under this turn must carry (owner and fence); ``LeaseLost`` when none is."""
        if self.lease is None:
            raise lease_lost(self._conversation_id, None)
        return self.lease

    async def acquire(self, wait: float) -> Lease:
        """Take the lease, waiting at most ``wait`` seconds; first give back one an earlier turn of this
        process could not."""
        if self._locks.unreleased:
            await self._release_remembered()
        self.lease = await self._store.acquire(self._conversation_id, owner=self._owner, ttl=self._ttl, wait=wait)
        self._locks.keeper.watch(self, self._ttl)
        return self.lease

    async def _release_remembered(self) -> None:
        stale = self._locks.unreleased.pop(self._key, None)
        if stale is None:
            return
        try:
            await self._store.release(stale)  # a no-op when it expired and someone else holds a newer one
        except BaseException:
            self._locks.unreleased[self._key] = stale  # still ours to give back, next time
            raise
        logger.info("gave back the lease (fence %d) an earlier turn could not", stale.fence, extra=log_context())

    def start_renewing(self) -> None:
        """Renew the lease every third of its ttl until the turn ends (called by the keeper)."""
        if self.lease is not None and self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_until_released())

    async def _renew_until_released(self) -> None:
        clock = self._locks.keeper.clock
        # The keeper starts this a third of a ttl after the lease was taken (or last renewed).
        expires = clock.time() + self._ttl * 2 / 3
        while self.lease is not None:
            started = clock.time()
            try:
                self.lease = await self._store.renew(self.lease, ttl=self._ttl)
            except LeaseLost as exc:
                self._lose(exc)
                return
            except StoreUnavailable as exc:
                # A store that is failing over (seconds) comes back before the lease runs out: try again
                # while the lease still lives, rather than let a long turn lose it to one blip.
                retry = self._ttl / 10
                if clock.time() + retry >= expires:
                    self._lose(exc)
                    return
                logger.info("could not renew the turn lease on %s, retrying: %s", self._conversation_id, exc,
                            extra=log_context())
                await clock.sleep(retry)
                continue
            expires = started + self._ttl
            await clock.sleep(self._ttl / 3)

    def _lose(self, exc: BaseException) -> None:
        self.lost = exc
        logger.warning("lost the turn lease on %s: %s", self._conversation_id, exc, extra=log_context())

    def stop_renewing(self) -> None:
        """Stop renewing the lease (before the save that gives it up). A renewal already under way is
        cancelled; should it land anyway, it only extends a lease the save then gives up."""
        self._locks.keeper.forget(self)
        if self._renewer is not None:
            self._renewer.cancel()

    def given_up(self) -> None:
        """The lease was given up by the turn's last save: nothing left to release."""
        self.lease = None

    async def release(self) -> None:
        """Stop renewing and give the lease up (nothing to give up after a save that released it). If the
        store fails, the lease is remembered and the next turn on the conversation gives it back."""
        if self.lease is None and self._renewer is None:
            return  # given up by the turn's last save (which stopped the renewal), or never taken
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
                # It expires by itself after its ttl; this process does not wait that long for its own lease.
                self._locks.unreleased[self._key] = lease
                logger.warning("could not release the turn lease: %s", exc, extra=log_context())
            except BaseException:
                self._locks.unreleased[self._key] = lease  # cancelled mid-release: it may still be held
                raise
