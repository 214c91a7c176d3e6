"""The one lease-wait loop every store shares (``store/_lease_wait.py``), driven by a scripted store on a
fake clock: nothing here waits on real time."""

from __future__ import annotations

import pytest

from sessionforce.errors import ConversationBusy, Delivery, InvalidArgument
from sessionforce.store import Held, Lease, MemoryStore, acquire_lease
from sessionforce.store._lease_wait import FIRST_POLL, MAX_POLL


class ScriptedSteps:
    """A store's two lease steps on a fake clock: the lease is held by ``holder`` until ``free_at``, or
    until ``release_at`` when a release wakes the waiter (``notify``)."""

    def __init__(self, *, free_at: float, release_at: float | None = None, notify: bool = True) -> None:
        self.now = 0.0
        self.free_at = free_at
        self.release_at = release_at
        self.notify = notify
        self.tries: list[float] = []
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def _free(self) -> bool:
        return self.now >= self.free_at or (self.release_at is not None and self.now >= self.release_at)

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        self.tries.append(self.now)
        if self._free():
            return Lease(conversation_id, owner, len(self.tries), self.now + ttl)
        return Held(self.free_at - self.now, "holder-1")

    async def wait_released(self, conversation_id: str, timeout: float) -> None:
        self.waits.append(timeout)
        if self.notify and self.release_at is not None and self.now < self.release_at <= self.now + timeout:
            self.now = self.release_at  # woken by the release
        else:
            self.now += timeout


async def test_a_free_lease_is_taken_in_one_step_without_waiting() -> None:
    steps = ScriptedSteps(free_at=0.0)
    lease = await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=10.0, clock=steps.clock)
    assert (lease.owner, steps.tries, steps.waits) == ("me", [0.0], [])


async def test_a_release_notification_ends_the_wait_at_once() -> None:
    steps = ScriptedSteps(free_at=30.0, release_at=0.2)
    lease = await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=10.0, clock=steps.clock)
    assert lease.owner == "me"
    assert steps.tries[-1] == pytest.approx(0.2)  # taken the moment it was released, not at a later poll


async def test_without_notifications_polls_back_off_to_a_cap() -> None:
    steps = ScriptedSteps(free_at=30.0, release_at=1.0, notify=False)
    await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=10.0, clock=steps.clock)
    assert steps.waits[0] == pytest.approx(FIRST_POLL)
    assert all(later >= earlier for earlier, later in zip(steps.waits, steps.waits[1:], strict=False))
    assert max(steps.waits) == pytest.approx(MAX_POLL)
    assert 1.0 <= steps.tries[-1] <= 1.0 + MAX_POLL  # a missed release costs at most one poll


async def test_it_never_waits_past_the_holders_expiry() -> None:
    steps = ScriptedSteps(free_at=1.0, notify=False)  # the holder died: its lease simply runs out
    await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=10.0, clock=steps.clock)
    assert 1.0 <= steps.tries[-1] <= 1.0011  # at its expiry (to the loop's 1 ms floor), not at a later poll


async def test_it_gives_up_with_conversation_busy_naming_the_holder_after_wait() -> None:
    steps = ScriptedSteps(free_at=30.0)
    with pytest.raises(ConversationBusy, match="holder-1") as caught:
        await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=2.0, clock=steps.clock)
    assert "c1" in str(caught.value)
    assert steps.now == pytest.approx(2.0)  # waited the bound, not a moment more
    assert caught.value.delivery is Delivery.NOT_SENT


async def test_wait_zero_tries_once() -> None:
    steps = ScriptedSteps(free_at=30.0)
    with pytest.raises(ConversationBusy):
        await acquire_lease(steps, "c1", owner="me", ttl=5.0, wait=0, clock=steps.clock)
    assert (steps.tries, steps.waits) == ([0.0], [])


async def test_store_acquire_is_the_shared_loop() -> None:
    store = MemoryStore()
    with pytest.raises(InvalidArgument, match="ttl"):
        await store.acquire("c1", owner="me", ttl=0, wait=0)
    held = await store.acquire("c1", owner="A", ttl=5.0, wait=0)
    with pytest.raises(ConversationBusy, match="MemoryStore"):  # where, named by the loop for every store
        await store.acquire("c1", owner="B", ttl=5.0, wait=0)
    await store.release(held)


def test_held_is_the_seconds_left_and_names_the_holder() -> None:
    held = Held(2.5, "worker-7")
    assert isinstance(held, float)
    assert (float(held), held.owner) == (2.5, "worker-7")
    assert float(Held(-1.0, "x")) > 0  # never zero or negative: a waiter always makes progress
