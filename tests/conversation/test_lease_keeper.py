"""The lease keeper: one timer renews the leases of long turns; short turns leave nothing behind."""

from __future__ import annotations

import asyncio
import time

from sessionforce.lifecycle._locks import LeaseKeeper, TurnLock
from sessionforce.store import MemoryStore


def timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers scheduled on ``loop`` and not cancelled (a private look at asyncio's heap, for the test)."""
    return sum(1 for handle in loop._scheduled if not handle.cancelled())  # type: ignore[attr-defined]


async def test_short_turns_share_one_timer_and_leave_no_renewal() -> None:
    store, keeper = MemoryStore(), LeaseKeeper()
    loop = asyncio.get_running_loop()
    before = timers(loop)
    locks = [TurnLock(store, f"c{n}", ttl=30.0, owner="me", keeper=keeper) for n in range(200)]
    for lock in locks:
        await lock.acquire(wait=0)
    assert len(keeper) == 200
    assert timers(loop) - before == 1  # one timer for 200 running turns
    for lock in locks:
        await lock.release()
    assert len(keeper) == 0
    assert all(lock._renewer is None for lock in locks)


async def test_a_long_turn_is_renewed_and_a_short_one_beside_it_is_not() -> None:
    store, keeper = MemoryStore(), LeaseKeeper()
    long_turn = TurnLock(store, "long", ttl=0.6, owner="me", keeper=keeper)
    short_turn = TurnLock(store, "short", ttl=0.6, owner="me", keeper=keeper)
    await long_turn.acquire(wait=0)
    await short_turn.acquire(wait=0)
    first = long_turn.lease
    await short_turn.release()
    await asyncio.sleep(1.0)  # longer than the ttl: only renewal keeps the lease alive
    assert long_turn.lost is None
    assert long_turn.lease is not None
    assert first is not None
    assert long_turn.lease.expires_at > first.expires_at
    assert long_turn.lease.fence == first.fence
    assert short_turn._renewer is None
    await long_turn.release()
    assert await store.acquire("long", owner="other", ttl=1.0, wait=0)  # released, not expired


async def test_a_later_turn_with_a_shorter_ttl_moves_the_timer_forward() -> None:
    store, keeper = MemoryStore(), LeaseKeeper()
    slow = TurnLock(store, "a", ttl=60.0, owner="me", keeper=keeper)
    quick = TurnLock(store, "b", ttl=0.6, owner="me", keeper=keeper)
    await slow.acquire(wait=0)
    await quick.acquire(wait=0)
    await asyncio.sleep(1.0)
    assert quick.lost is None
    assert quick.lease is not None
    assert quick.lease.expires_at > time.time()  # 1 s into a 0.6 s lease: renewed, and still held
    assert await store.renew(quick.lease, ttl=0.6)  # the store agrees it is live
    await quick.release()
    await slow.release()


def test_a_keeper_used_on_a_new_event_loop_starts_afresh() -> None:
    store, keeper = MemoryStore(), LeaseKeeper()

    async def turn(name: str, hold: float) -> TurnLock:
        lock = TurnLock(store, name, ttl=0.6, owner="me", keeper=keeper)
        await lock.acquire(wait=0)
        await asyncio.sleep(hold)
        return lock

    abandoned = asyncio.run(turn("first", 0))  # its loop closes with the timer still set
    assert len(keeper) == 1
    assert abandoned.lease is not None
    lock = asyncio.run(turn("second", 1.0))  # the new loop gets its own timer: renewed
    assert lock.lost is None
    assert len(keeper) == 0  # the new loop's tick dropped the first loop's entry
