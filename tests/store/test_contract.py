"""One contract suite for every store: each promise of the store protocol (v2) is proved here for the
memory, SQLite, Redis and PostgreSQL stores alike.

Memory and SQLite run on a fake clock (leases expire when the test says so, no real waiting); Redis
expires leases with its own PX timers and PostgreSQL on its own clock, so there the lease TTL is a small
real one and time really passes. PostgreSQL runs in a schema of the test's own (dropped after it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionforce.errors import ConversationBusy, InvalidArgument, LeaseLost, StaleRecord
from sessionforce.store import (
    ConversationRecord,
    ConversationStatus,
    Lease,
    MemoryStore,
    PendingTurn,
    SessionInfo,
    SessionState,
    Store,
    TranscriptEntry,
)

KINDS = ["memory", "sqlite", "redis", "postgres"]
SERVER_CLOCK = {"redis", "postgres"}  # leases expire on the server's clock: real time passes


class FakeClock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    """A store under test, the lease TTL to use with it, and how to let time pass for its leases."""

    kind: str
    store: Store
    ttl: float
    clock: FakeClock | None
    request: pytest.FixtureRequest
    tmp_path: Path

    async def lose_state(self) -> None:
        """The backend loses everything it held (Redis restarted empty; a SQLite file replaced by an empty
        one, as a restored backup from before the conversation; memory: a new process), and the store is
        used again."""
        if self.kind == "redis":
            from tests.redis_server import delete_prefix

            delete_prefix(self.request.getfixturevalue("redis_url"), self.request.getfixturevalue("redis_prefix"))
            return
        if self.kind == "postgres":  # every table gone, the store still open: it makes them again
            from tests.postgres_server import drop_schema

            drop_schema(self.request.getfixturevalue("postgres_url"), self.request.getfixturevalue("postgres_schema"))
            return
        await self.store.aclose()
        if self.kind == "sqlite":
            for path in (self.tmp_path / "store").iterdir():
                path.unlink()
        self.store = make_store(self.kind, self.request, self.tmp_path, self.clock)

    async def pass_time(self, seconds: float) -> None:
        """Let ``seconds`` pass for lease expiry: on the fake clock, or (Redis) for real."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock | None) -> Store:
    """A fresh, empty store of ``kind`` (Redis: under a unique key prefix, cleaned up after the test)."""
    now: Any = clock if clock is not None else time.time
    if kind == "memory":
        return MemoryStore(clock=now)
    if kind == "sqlite":
        from sessionforce.store import SQLiteStore

        return SQLiteStore(tmp_path / "store" / "sessions.db", clock=now)
    if kind == "postgres":
        from sessionforce.store import PostgresStore

        base: str = request.getfixturevalue("postgres_url")
        return PostgresStore.from_url(f"{base}?schema={request.getfixturevalue('postgres_schema')}&pool_max=3")
    from sessionforce.store import RedisStore

    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisStore.from_url(url, prefix=prefix)


@pytest.fixture(params=KINDS)
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The harness for one store kind."""
    kind: str = request.param
    clock = None if kind in SERVER_CLOCK else FakeClock()
    # Stores on the server's clock really wait: a lease short enough to keep the suite quick, long enough that
    # a loaded CI machine's scheduling delay (tens of ms, more with parallel workers) cannot expire it early.
    ttl = 1.0 if clock is None else 0.2
    harness = Harness(kind, make_store(kind, request, tmp_path, clock), ttl, clock, request, tmp_path)
    yield harness
    await harness.store.aclose()


def new_record(conversation_id: str | None = None, **fields: Any) -> ConversationRecord:
    """A version-0 record with sensible defaults."""
    values: dict[str, Any] = {
        "conversation_id": conversation_id or f"conv-{uuid.uuid4().hex[:8]}",
        "agent_id": "0XxAGENT",
        "external_session_key": str(uuid.uuid4()),
        "created_at": 1000.0,
        "last_activity_at": 1000.0,
    }
    values.update(fields)
    return ConversationRecord(**values)


# -- compare-and-save -------------------------------------------------------------------------------------


async def test_load_of_unknown_conversation_is_none(h: Harness) -> None:
    assert await h.store.load("nobody") is None
    assert await h.store.transcript("nobody") == []


async def test_save_bumps_the_version_and_load_returns_the_saved_record(h: Harness) -> None:
    first = await h.store.save(new_record("c1", metadata={"a": [1, "x"]}))
    assert first.version == 1
    assert await h.store.load("c1") == first
    second = await h.store.save(first.replace(turns=3))
    assert second.version == 2
    assert second.turns == 3
    assert await h.store.load("c1") == second


async def test_a_stale_save_raises_and_keeps_the_newer_record(h: Harness) -> None:
    v1 = await h.store.save(new_record("c1"))
    v2 = await h.store.save(v1.replace(turns=1))
    with pytest.raises(StaleRecord, match="c1"):
        await h.store.save(v1.replace(turns=99))
    assert await h.store.load("c1") == v2


async def test_inserting_version_0_twice_raises(h: Harness) -> None:
    first = await h.store.save(new_record("c1"))
    with pytest.raises(StaleRecord):
        await h.store.save(new_record("c1", turns=5))
    assert await h.store.load("c1") == first


async def test_a_save_with_a_version_that_was_never_stored_raises(h: Harness) -> None:
    with pytest.raises(StaleRecord):
        await h.store.save(new_record("c1", version=4))
    assert await h.store.load("c1") is None


# -- leases and fencing -------------------------------------------------------------------------------


async def test_the_lease_is_exclusive_and_fences_grow(h: Harness) -> None:
    a = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    with pytest.raises(ConversationBusy, match="c1"):
        await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    await h.store.release(a)
    b = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    assert (a.owner, b.owner) == ("A", "B")
    assert b.fence > a.fence
    other = await h.store.acquire("c2", owner="A", ttl=5.0, wait=0)  # leases are per conversation
    await h.store.release(b)
    await h.store.release(other)


async def test_a_fenced_save_and_append_succeed_under_the_live_lease(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    saved = await h.store.save(new_record("c1"), lease=lease)
    await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0), lease=lease)
    assert (await h.store.load("c1")) == saved
    assert len(await h.store.transcript("c1")) == 1
    await h.store.release(lease)


async def test_a_save_appends_its_transcript_entries_in_the_same_atomic_step(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    first = TranscriptEntry(kind="turn", at=1.0, text="one")
    saved = await h.store.save(new_record("c1"), lease=lease, transcript=[first])
    await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=2.0, text="two"), lease=lease)
    later = [TranscriptEntry(kind="turn", at=3.0, text="three"), TranscriptEntry(kind="session_ended", at=3.5)]
    await h.store.save(saved.replace(turns=3), lease=lease, transcript=later)
    assert [e.text for e in await h.store.transcript("c1")] == ["one", "two", "three", None]
    # A refused save appends nothing: record and transcript never disagree.
    with pytest.raises(StaleRecord):
        await h.store.save(saved.replace(turns=9), lease=lease, transcript=[TranscriptEntry(kind="x", at=4.0)])
    await h.store.release(lease)
    with pytest.raises(LeaseLost):
        await h.store.save(
            (await h.store.load("c1")).replace(turns=10),  # type: ignore[union-attr]
            lease=lease,
            transcript=[TranscriptEntry(kind="y", at=5.0)],
        )
    assert [e.kind for e in await h.store.transcript("c1")] == ["turn", "turn", "turn", "session_ended"]


async def test_writes_with_an_old_fence_are_refused_after_a_new_lease(h: Harness) -> None:
    old = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    saved = await h.store.save(new_record("c1"), lease=old)
    await h.pass_time(h.ttl * 1.5)
    new = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    with pytest.raises(LeaseLost, match="c1"):
        await h.store.save(saved.replace(turns=1), lease=old)
    with pytest.raises(LeaseLost):
        await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0), lease=old)
    assert await h.store.load("c1") == saved
    assert await h.store.transcript("c1") == []
    assert (await h.store.save(saved, lease=new)).version == 2
    await h.store.release(new)


async def test_writes_are_refused_once_the_lease_expired(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    await h.pass_time(h.ttl * 1.5)
    with pytest.raises(LeaseLost):
        await h.store.save(new_record("c1"), lease=lease)
    with pytest.raises(LeaseLost):
        await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0), lease=lease)
    assert await h.store.load("c1") is None


async def test_writes_are_refused_after_release(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    await h.store.release(lease)
    with pytest.raises(LeaseLost):
        await h.store.save(new_record("c1"), lease=lease)


async def test_a_save_can_give_the_lease_up_in_the_same_step(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    saved = await h.store.save(new_record("c1"), lease=lease)
    waiter = asyncio.create_task(h.store.acquire("c1", owner="B", ttl=5.0, wait=3.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    entry = TranscriptEntry(kind="turn", at=2.0, text="last")
    final = await h.store.save(saved.replace(turns=1), lease=lease, transcript=[entry], release=True)
    assert final.version == 2
    b = await waiter  # woken by the save itself, no release call
    assert time.monotonic() - started < 1.0
    assert b.fence > lease.fence
    assert await h.store.load("c1") == final
    assert [e.text for e in await h.store.transcript("c1")] == ["last"]
    with pytest.raises(LeaseLost):  # the old fence is dead
        await h.store.save(final.replace(turns=2), lease=lease)
    await h.store.release(b)


async def test_a_refused_save_keeps_the_lease_it_was_to_release(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    v1 = await h.store.save(new_record("c1"), lease=lease)
    v2 = await h.store.save(v1.replace(turns=1), lease=lease)
    with pytest.raises(StaleRecord):
        await h.store.save(v1.replace(turns=9), lease=lease, release=True)
    with pytest.raises(ConversationBusy):  # still held by A
        await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    assert (await h.store.save(v2, lease=lease, release=True)).version == 3
    await h.store.release(await h.store.acquire("c1", owner="B", ttl=5.0, wait=0))


async def test_acquire_waits_for_the_holder_to_release(h: Harness) -> None:
    a = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    started = time.monotonic()
    waiter = asyncio.create_task(h.store.acquire("c1", owner="B", ttl=5.0, wait=3.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await h.store.release(a)
    b = await waiter
    assert b.owner == "B"
    assert b.fence > a.fence
    assert time.monotonic() - started < 1.0
    await h.store.release(b)


async def test_acquire_waits_for_the_holder_to_expire(h: Harness) -> None:
    a = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    waiter = asyncio.create_task(h.store.acquire("c1", owner="B", ttl=5.0, wait=3.0))
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await h.pass_time(h.ttl * 1.5)
    b = await asyncio.wait_for(waiter, 2.5)
    assert b.fence > a.fence
    await h.store.release(b)


async def test_acquire_gives_up_with_conversation_busy_after_wait(h: Harness) -> None:
    a = await h.store.acquire("c1", owner="worker-A", ttl=5.0, wait=0)
    started = time.monotonic()
    with pytest.raises(ConversationBusy, match="c1") as caught:
        await h.store.acquire("c1", owner="B", ttl=5.0, wait=0.15)
    elapsed = time.monotonic() - started
    assert 0.14 <= elapsed < 1.5
    assert "worker-A" in str(caught.value)
    await h.store.release(a)


async def test_renew_extends_a_held_lease(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    await h.pass_time(h.ttl * 0.6)
    renewed = await h.store.renew(lease, ttl=h.ttl)
    assert renewed.fence == lease.fence
    assert renewed.expires_at > lease.expires_at
    await h.pass_time(h.ttl * 0.6)  # past the first expiry, inside the renewed one
    with pytest.raises(ConversationBusy):
        await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    assert (await h.store.save(new_record("c1"), lease=renewed)).version == 1
    await h.store.release(renewed)


async def test_renewing_a_lost_lease_raises(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    await h.pass_time(h.ttl * 1.5)
    with pytest.raises(LeaseLost):
        await h.store.renew(lease, ttl=5.0)
    taken = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    with pytest.raises(LeaseLost):
        await h.store.renew(lease, ttl=5.0)
    await h.store.release(taken)


async def test_releasing_a_lost_lease_is_a_no_op(h: Harness) -> None:
    lost = await h.store.acquire("c1", owner="A", ttl=h.ttl, wait=0)
    await h.pass_time(h.ttl * 1.5)
    await h.store.release(lost)  # expired, nobody else: nothing to do, no error
    holder = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    await h.store.release(lost)  # must not free B's lease
    with pytest.raises(ConversationBusy):
        await h.store.acquire("c1", owner="C", ttl=5.0, wait=0)
    assert (await h.store.save(new_record("c1"), lease=holder)).version == 1
    await h.store.release(holder)


# -- protocol v2: the whole lease, fences that never go back, one wait loop ----------------------------------


async def test_a_write_with_the_right_fence_but_another_owner_is_refused(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    saved = await h.store.save(new_record("c1"), lease=lease)
    impostor = Lease("c1", "B", lease.fence, lease.expires_at)
    with pytest.raises(LeaseLost, match="c1"):
        await h.store.save(saved.replace(turns=1), lease=impostor, transcript=[TranscriptEntry(kind="x", at=1.0)])
    with pytest.raises(LeaseLost):
        await h.store.save(saved.replace(turns=1), lease=impostor, release=True)
    with pytest.raises(LeaseLost):
        await h.store.append_transcript("c1", TranscriptEntry(kind="x", at=1.0), lease=impostor)
    with pytest.raises(LeaseLost):
        await h.store.renew(impostor, ttl=5.0)
    await h.store.release(impostor)  # not the current lease: a no-op
    assert isinstance(await h.store.try_acquire("c1", owner="C", ttl=5.0), float)  # still A's
    assert await h.store.load("c1") == saved
    assert await h.store.transcript("c1") == []
    assert (await h.store.save(saved, lease=lease, release=True)).version == 2


async def test_a_lease_of_another_conversation_lets_no_write_through(h: Harness) -> None:
    mine = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    other = await h.store.acquire("c2", owner="A", ttl=5.0, wait=0)
    saved = await h.store.save(new_record("c1"), lease=mine)
    with pytest.raises(LeaseLost):
        await h.store.save(saved.replace(turns=1), lease=other)
    with pytest.raises(LeaseLost):
        await h.store.append_transcript("c1", TranscriptEntry(kind="x", at=1.0), lease=other)
    assert await h.store.load("c1") == saved
    await h.store.release(mine)
    await h.store.release(other)


async def test_a_write_under_a_lease_from_before_the_store_lost_its_state_is_refused(h: Harness) -> None:
    """Issue 11 finding 3: A's lease is in flight when the backend loses everything; B takes the
    conversation; A's writes must not land."""
    old = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    await h.store.save(new_record("c1"), lease=old)
    await h.lose_state()
    new = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    if h.kind in SERVER_CLOCK:  # fences come from the server's clock: above every one handed out before
        assert new.fence > old.fence
    fresh = await h.store.save(new_record("c1"), lease=new, transcript=[TranscriptEntry(kind="turn", at=1.0)])
    with pytest.raises(LeaseLost):
        await h.store.save(fresh.replace(turns=9), lease=old)
    with pytest.raises(LeaseLost):
        await h.store.save(new_record("c1", turns=9), lease=old, release=True)
    with pytest.raises(LeaseLost):
        await h.store.append_transcript("c1", TranscriptEntry(kind="stale", at=2.0), lease=old)
    with pytest.raises(LeaseLost):
        await h.store.renew(old, ttl=5.0)
    await h.store.release(old)  # a no-op: B keeps the lease
    assert isinstance(await h.store.try_acquire("c1", owner="C", ttl=5.0), float)
    assert await h.store.load("c1") == fresh
    assert [e.kind for e in await h.store.transcript("c1")] == ["turn"]
    await h.store.release(new)


async def test_the_owner_of_a_live_lease_takes_it_again_with_a_new_fence(h: Harness) -> None:
    """Issue 11 finding 9: an acquire whose answer was lost (or a release that failed) must not lock its
    owner out for a whole ttl; the lease it lost track of is dead from then on."""
    lost = await h.store.acquire("c1", owner="A", ttl=30.0, wait=0)
    again = await h.store.acquire("c1", owner="A", ttl=30.0, wait=0)
    assert again.fence > lost.fence
    with pytest.raises(LeaseLost):
        await h.store.save(new_record("c1"), lease=lost)
    saved = await h.store.save(new_record("c1"), lease=again)
    with pytest.raises(ConversationBusy):  # still exclusive for everyone else
        await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)
    await h.store.release(lost)  # a no-op
    await h.store.save(saved, lease=again, release=True)
    assert isinstance(await h.store.try_acquire("c1", owner="B", ttl=5.0), Lease)


async def test_try_acquire_answers_the_lease_or_how_long_the_holder_keeps_it(h: Harness) -> None:
    lease = await h.store.try_acquire("c1", owner="worker-A", ttl=5.0)
    assert isinstance(lease, Lease)
    assert (lease.conversation_id, lease.owner) == ("c1", "worker-A")
    held = await h.store.try_acquire("c1", owner="B", ttl=5.0)
    assert isinstance(held, float)
    assert 0 < held <= 5.0
    assert getattr(held, "owner", "worker-A") == "worker-A"
    await h.store.release(lease)
    assert isinstance(await h.store.try_acquire("c1", owner="B", ttl=5.0), Lease)


async def test_wait_released_returns_at_a_release_or_after_its_timeout(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    started = time.monotonic()
    await h.store.wait_released("c1", 0.05)  # nobody releases: it times out
    assert 0.04 <= time.monotonic() - started < 1.0
    waiter = asyncio.create_task(h.store.wait_released("c1", 5.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await h.store.release(lease)
    await asyncio.wait_for(waiter, 2.0)
    assert time.monotonic() - started < 1.0


async def test_bad_lease_arguments_are_invalid_arguments(h: Harness) -> None:
    with pytest.raises(InvalidArgument, match="lease"):
        await h.store.save(new_record("c1"), release=True)
    for ttl in (0, -1.0, float("nan")):
        with pytest.raises(InvalidArgument, match="ttl"):
            await h.store.try_acquire("c1", owner="A", ttl=ttl)
        with pytest.raises(InvalidArgument, match="ttl"):
            await h.store.acquire("c1", owner="A", ttl=ttl, wait=0)
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    with pytest.raises(InvalidArgument, match="ttl"):
        await h.store.renew(lease, ttl=0)
    assert await h.store.load("c1") is None
    await h.store.release(lease)


# -- transcript, listing, delete ------------------------------------------------------------------------


async def test_transcript_keeps_append_order_per_conversation(h: Harness) -> None:
    for i in range(20):
        await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=float(i), sequence_id=i, text=f"t{i}"))
        if i % 5 == 0:
            await h.store.append_transcript("c2", TranscriptEntry(kind="error", at=float(i)))
    entries = await h.store.transcript("c1")
    assert [e.sequence_id for e in entries] == list(range(20))
    assert entries[3] == TranscriptEntry(kind="turn", at=3.0, sequence_id=3, text="t3")
    assert [e.kind for e in await h.store.transcript("c2")] == ["error"] * 4


async def test_list_filters_by_status_and_idle_time_oldest_first(h: Harness) -> None:
    active, idle = ConversationStatus.ACTIVE, ConversationStatus.IDLE
    layout = [("a1", active, 500.0), ("i1", idle, 100.0), ("a2", active, 300.0), ("i2", idle, 900.0)]
    layout += [("a3", active, 950.0)]
    for cid, status, last in layout:
        await h.store.save(new_record(cid, status=status, last_activity_at=last))

    def ids(records: list[ConversationRecord]) -> list[str]:
        return [r.conversation_id for r in records]

    assert ids(await h.store.list_conversations()) == ["i1", "a2", "a1", "i2", "a3"]
    assert ids(await h.store.list_conversations(status=active)) == ["a2", "a1", "a3"]
    assert ids(await h.store.list_conversations(status=idle)) == ["i1", "i2"]
    assert ids(await h.store.list_conversations(idle_for=100.0, now=1000.0)) == ["i1", "a2", "a1", "i2"]
    assert ids(await h.store.list_conversations(status=active, idle_for=500.0, now=1000.0)) == ["a2", "a1"]
    assert ids(await h.store.list_conversations(limit=2)) == ["i1", "a2"]
    assert ids(await h.store.list_conversations(status=active, limit=1)) == ["a2"]
    assert await h.store.list_conversations(idle_for=10.0, now=50.0) == []
    full = await h.store.list_conversations(status=idle)
    assert full[0] == await h.store.load("i1")


async def test_list_follows_status_and_activity_changes(h: Harness) -> None:
    rec = await h.store.save(new_record("c1", status=ConversationStatus.ACTIVE, last_activity_at=100.0))
    await h.store.save(rec.replace(status=ConversationStatus.IDLE, last_activity_at=700.0))
    assert await h.store.list_conversations(status=ConversationStatus.ACTIVE) == []
    [found] = await h.store.list_conversations(status=ConversationStatus.IDLE)
    assert (found.conversation_id, found.last_activity_at, found.version) == ("c1", 700.0, 2)
    assert await h.store.list_conversations(idle_for=500.0, now=1000.0) == []


async def test_list_uses_the_store_clock_when_now_is_not_given(h: Harness) -> None:
    now = h.clock() if h.clock is not None else time.time()
    await h.store.save(new_record("old", last_activity_at=now - 3600))
    await h.store.save(new_record("new", last_activity_at=now))
    assert [r.conversation_id for r in await h.store.list_conversations(idle_for=600)] == ["old"]


async def test_delete_forgets_record_transcript_and_lease_but_not_the_fence(h: Harness) -> None:
    lease = await h.store.acquire("c1", owner="A", ttl=5.0, wait=0)
    await h.store.save(new_record("c1"), lease=lease)
    await h.store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0), lease=lease)
    await h.store.delete("c1")
    assert await h.store.load("c1") is None
    assert await h.store.transcript("c1") == []
    assert await h.store.list_conversations() == []
    after = await h.store.acquire("c1", owner="B", ttl=5.0, wait=0)  # the lease went with it
    assert after.fence > lease.fence  # and a fence is never handed out twice
    with pytest.raises(LeaseLost):
        await h.store.save(new_record("c1"), lease=lease)
    assert (await h.store.save(new_record("c1"), lease=after)).version == 1  # a fresh start
    await h.store.delete("never-existed")  # deleting nothing is fine
    await h.store.release(after)


# -- round trip of any valid record -----------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | finite | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
sessions = st.builds(
    SessionInfo,
    session_id=st.text(max_size=20),
    external_session_key=st.text(max_size=20),
    started_at=finite,
    state=st.sampled_from(SessionState),
    ended_at=st.none() | finite,
    end_reason=st.none() | st.text(max_size=10),
)
pending = st.builds(
    PendingTurn,
    sequence_id=st.integers(0, 2**40),
    session_id=st.text(max_size=10),
    text=st.text(),
    started_at=finite,
    owner=st.text(max_size=10),
)
records = st.builds(
    ConversationRecord,
    conversation_id=st.text(max_size=30),
    agent_id=st.text(max_size=10),
    external_session_key=st.text(max_size=20),
    status=st.sampled_from(ConversationStatus),
    session_id=st.none() | st.text(max_size=10),
    sessions=st.lists(sessions, max_size=3),
    last_sequence_id=st.integers(0, 2**40),
    pending=st.none() | pending,
    created_at=finite,
    last_activity_at=finite,
    turns=st.integers(0, 2**31),
    agent_ended=st.booleans(),
    escalated=st.booleans(),
    metadata=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)


@pytest.mark.parametrize("kind", KINDS)
def test_any_valid_record_and_entry_round_trip(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(_make_in_loop(kind, request, tmp_path))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(record=records, text=st.text(), detail=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    def check(record: ConversationRecord, text: str, detail: dict[str, Any]) -> None:
        # Any id is fine; the suffix keeps examples apart (each is a version-0 insert).
        record = record.replace(conversation_id=f"{record.conversation_id}/{uuid.uuid4().hex}")
        saved = loop.run_until_complete(store.save(record))
        assert saved == record.replace(version=1)
        assert loop.run_until_complete(store.load(record.conversation_id)) == saved
        entry = TranscriptEntry(kind="turn", at=1.5, text=text, detail=detail)
        loop.run_until_complete(store.append_transcript(record.conversation_id, entry))
        assert loop.run_until_complete(store.transcript(record.conversation_id)) == [entry]

    try:
        check()
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()


async def _make_in_loop(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(kind, request, tmp_path, None)
