"""The lease keeper: one timer renews the leases of long turns; short turns leave nothing behind.
Time is a fake clock the tests move by hand: nothing here waits on real time."""

from __future__ import annotations

import asyncio

from sessionforce.errors import StoreUnavailable
from sessionforce.lifecycle._locks import LeaseKeeper, LocalLocks, TurnLock
from sessionforce.store import Lease, MemoryStore
from tests.conversation.fake_time import FakeTime, settle


def setup() -> tuple[FakeTime, MemoryStore, LocalLocks]:
    time = FakeTime()
    return time, MemoryStore(clock=time.time), LocalLocks(keeper=LeaseKeeper(clock=time))


def turn_lock(store: MemoryStore, locks: LocalLocks, name: str, ttl: float) -> TurnLock:
    return TurnLock(store, name, ttl=ttl, owner="me", locks=locks)


async def test_short_turns_share_one_timer_and_leave_no_renewal() -> None:
    time, store, locks = setup()
    turns = [turn_lock(store, locks, f"c{n}", 30.0) for n in range(200)]
    for lock in turns:
        await lock.acquire(wait=0)
    assert len(locks.keeper) == 200
    assert time.pending() == 1  # one timer for 200 running turns
    for lock in turns:
        await lock.release()
    assert len(locks.keeper) == 0
    await time.advance(60)  # the timer fires, finds nothing due, and is not set again
    assert time.pending() == 0
    assert all(lock._renewer is None for lock in turns)


async def test_a_long_turn_is_renewed_and_a_short_one_beside_it_is_not() -> None:
    time, store, locks = setup()
    long_turn = turn_lock(store, locks, "long", 0.6)
    short_turn = turn_lock(store, locks, "short", 0.6)
    await long_turn.acquire(wait=0)
    await short_turn.acquire(wait=0)
    first = long_turn.lease
    assert first is not None
    await short_turn.release()
    await time.advance(3.0)  # five ttls: only renewal keeps the lease alive
    assert long_turn.lost is None
    assert long_turn.lease is not None
    assert long_turn.lease.expires_at > time.now
    assert long_turn.lease.fence == first.fence
    assert await store.renew(long_turn.lease, ttl=0.6)  # the store agrees it is live
    assert short_turn._renewer is None
    await long_turn.release()
    assert await store.acquire("long", owner="other", ttl=1.0, wait=0)  # released, not expired


async def test_an_unrenewed_lease_expires_in_fake_time_too() -> None:
    """The other side: without the keeper's renewal the store lets the lease go after its ttl."""
    time, store, _ = setup()
    lease = await store.acquire("c", owner="me", ttl=0.6, wait=0)
    await time.advance(0.7)
    taken = await store.acquire("c", owner="other", ttl=0.6, wait=0)
    assert taken.fence > lease.fence


async def test_a_later_turn_with_a_shorter_ttl_moves_the_timer_forward() -> None:
    time, store, locks = setup()
    slow = turn_lock(store, locks, "a", 60.0)
    quick = turn_lock(store, locks, "b", 0.6)
    await slow.acquire(wait=0)
    await quick.acquire(wait=0)
    await time.advance(1.0)
    assert quick.lost is None
    assert quick.lease is not None
    assert quick.lease.expires_at > time.now  # 1 s into a 0.6 s lease: renewed, and still held
    assert slow._renewer is None  # its renewal is not due before 20 s
    await quick.release()
    await slow.release()


async def test_a_renewal_that_fails_marks_the_lease_lost() -> None:
    time, store, locks = setup()
    lock = turn_lock(store, locks, "c", 0.6)
    await lock.acquire(wait=0)
    await store.delete("c")  # the lease is gone from the store (as after a takeover)
    await time.advance(0.3)
    assert lock.lost is not None
    await lock.release()


def test_a_keeper_used_on_a_new_event_loop_starts_afresh() -> None:
    time, store, locks = setup()

    async def turn(name: str, hold: float) -> TurnLock:
        lock = turn_lock(store, locks, name, 0.6)
        await lock.acquire(wait=0)
        await time.advance(hold)
        return lock

    abandoned = asyncio.run(turn("first", 0))  # its loop closes with the timer still set
    assert len(locks.keeper) == 1
    assert abandoned.lease is not None
    lock = asyncio.run(turn("second", 1.0))  # the new loop gets its own timer: renewed
    assert lock.lost is None
    assert len(locks.keeper) == 0  # the new loop's tick dropped the first loop's entry


class FlakyRelease(MemoryStore):
    """A memory store whose next ``release`` fails as a store hiccup does (after giving nothing up)."""

    fail_next_release = False

    async def release(self, lease: Lease) -> None:
        if self.fail_next_release:
            self.fail_next_release = False
            raise StoreUnavailable("the store hiccuped")
        await super().release(lease)


async def test_a_lease_whose_release_failed_is_given_back_by_the_next_turn_at_once() -> None:
    """Issue 11 finding 9 (lifecycle side): a release lost to a store hiccup must not lock this process
    out of its own conversation for a whole lease_ttl."""
    time = FakeTime()
    store = FlakyRelease(clock=time.time)
    locks = LocalLocks(keeper=LeaseKeeper(clock=time))
    first = turn_lock(store, locks, "c", 30.0)
    held = await first.acquire(wait=0)
    store.fail_next_release = True
    await first.release()  # logged, remembered: the store still holds it
    assert locks.unreleased == {"c": held}
    second = turn_lock(store, locks, "c", 30.0)
    lease = await asyncio.wait_for(second.acquire(wait=0), 1)  # no wait for the ttl: given back first
    assert lease.fence > held.fence
    assert locks.unreleased == {}
    await second.release()


async def test_a_remembered_lease_stays_remembered_while_the_store_is_still_down() -> None:
    time = FakeTime()
    store = FlakyRelease(clock=time.time)
    locks = LocalLocks(keeper=LeaseKeeper(clock=time))
    first = turn_lock(store, locks, "c", 30.0)
    held = await first.acquire(wait=0)
    store.fail_next_release = True
    await first.release()
    store.fail_next_release = True
    try:
        await turn_lock(store, locks, "c", 30.0).acquire(wait=0)
    except StoreUnavailable:
        pass
    else:  # pragma: no cover - reported below
        raise AssertionError("the store is down: acquiring must fail")
    assert locks.unreleased == {"c": held}  # still ours to give back
    await settle()
    again = turn_lock(store, locks, "c", 30.0)
    assert (await again.acquire(wait=0)).fence > held.fence
    await again.release()


class DownForAWhile(MemoryStore):
    """A memory store whose renewals fail (as during a failover) until ``up_at`` on the fake clock."""

    def __init__(self, time: FakeTime, up_at: float) -> None:
        super().__init__(clock=time.time)
        self._time = time
        self.up_at = up_at
        self.failed_renewals = 0

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        if self._time.now < self.up_at:
            self.failed_renewals += 1
            raise StoreUnavailable("the primary is failing over")
        return await super().renew(lease, ttl=ttl)


async def test_a_renewal_retries_through_a_store_outage_shorter_than_the_lease() -> None:
    """A failover takes seconds: a long turn keeps its lease if the store is back before the lease ends."""
    time = FakeTime()
    store = DownForAWhile(time, up_at=time.now + 14.0)  # down from 10 s (the first renewal) to 14 s
    locks = LocalLocks(keeper=LeaseKeeper(clock=time))
    lock = turn_lock(store, locks, "c", 30.0)
    first = await lock.acquire(wait=0)
    await time.advance(60.0)
    assert store.failed_renewals == 2  # at 10 s and 13 s (a tenth of the ttl apart), then 16 s renewed
    assert lock.lost is None
    assert lock.lease is not None
    assert lock.lease.fence == first.fence
    assert lock.lease.expires_at > time.now  # renewed every 10 s since
    await lock.release()


async def test_a_renewal_gives_up_when_the_outage_outlasts_the_lease() -> None:
    time = FakeTime()
    store = DownForAWhile(time, up_at=time.now + 1_000.0)
    locks = LocalLocks(keeper=LeaseKeeper(clock=time))
    lock = turn_lock(store, locks, "c", 30.0)
    await lock.acquire(wait=0)
    await time.advance(60.0)
    assert isinstance(lock.lost, StoreUnavailable)
    # Tried at 10, 13, ... while the lease (to 30 s) could still be saved; never after it ran out.
    assert store.failed_renewals == 7
    await lock.release()
