"""Ending sessions and holding leases when things go wrong: a session our own cancelled turn still locks
(issue 11 finding 1), a lease whose release a store hiccup swallowed (finding 9), and a long turn's lease
renewed (in fake time: nothing here waits on real time for a lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sessionforce import AsyncAgentClient, Conversations, RetryPolicy
from sessionforce.emulator import CallableAgent, RunningEmulator, TurnContext, run_emulator
from sessionforce.errors import ConversationBusy, SessionLocked
from sessionforce.lifecycle import reap_idle
from sessionforce.lifecycle._locks import LeaseKeeper, LocalLocks
from sessionforce.store import ConversationStatus, MemoryStore
from tests.conversation.fake_time import FakeTime
from tests.conversation.faulty_store import FaultyStore
from tests.support import Admin, client_kwargs

SLOW_MS = 1500


def _echo(ctx: TurnContext) -> str:
    return f"You said: {ctx.text}"


@pytest.fixture
def slow_emu() -> Iterator[RunningEmulator]:
    """An echo agent that takes SLOW_MS to answer: long enough to cancel a turn in the middle of it."""
    with run_emulator(agents=[CallableAgent(_echo, name="Slow", latency_ms=SLOW_MS)]) as emu:
        yield emu


async def cancel_in_flight(conversations: Conversations, conversation_id: str) -> None:
    """Start a session, then send a turn and give up on it while the agent is still thinking."""
    conv = conversations.get(conversation_id)
    await conv.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(conv.send("hello"), 0.3)


# ------------------------------------------------------------------ finding 1


async def test_end_after_a_cancelled_turn_waits_out_our_own_request(slow_emu: RunningEmulator) -> None:
    admin = Admin(slow_emu.url)
    async with AsyncAgentClient(**client_kwargs(slow_emu)) as client:
        conversations = Conversations(client, store=MemoryStore())
        await cancel_in_flight(conversations, "cancelled")
        assert await asyncio.wait_for(conversations.get("cancelled").end(), 10)  # 423s waited out by the wire
        record = await conversations.get("cancelled").record()
    assert [s["state"] for s in admin.sessions()] == ["ended"]
    assert admin.requests("end_session", 423) >= 1  # it was locked, and the end waited
    assert record is not None
    assert record.status is ConversationStatus.IDLE
    admin.http.close()


async def test_a_session_that_could_not_be_ended_stays_live_for_the_reaper(slow_emu: RunningEmulator) -> None:
    admin = Admin(slow_emu.url)
    store = MemoryStore()
    async with AsyncAgentClient(**client_kwargs(slow_emu), retry=RetryPolicy(locked_wait=0)) as client:
        conversations = Conversations(client, store=store)
        await cancel_in_flight(conversations, "could-not-end")
        conv = conversations.get("could-not-end")
        with pytest.raises(SessionLocked):
            await conv.end()
        record = await conv.record()
        assert record is not None
        assert record.status is ConversationStatus.ACTIVE
        assert record.session_id is not None
        marker = record.metadata["end_failed"]
        assert marker["session_id"] == record.session_id
        assert "423" in marker["error"]
        assert [e.kind for e in await conv.transcript()][-1] == "end_failed"
        while any(s["inFlight"] for s in admin.sessions()):
            await asyncio.sleep(0.05)  # the server finishes the cancelled turn
        assert await reap_idle(conversations, idle_for=0) == ["could-not-end"]
        record = await conv.record()
    assert record is not None
    assert "end_failed" not in record.metadata
    assert [s["state"] for s in admin.sessions()] == ["ended"]
    admin.http.close()


# ------------------------------------------------------------------ finding 9


async def test_a_release_lost_to_a_store_hiccup_does_not_lock_this_process_out(
    client: AsyncAgentClient, admin: Admin
) -> None:
    store = FaultyStore()
    conv = Conversations(client, store=store).get("hiccup", lease_ttl=30, lock_wait=0.5)
    await conv.send("one")
    store.fail("save")  # the turn's last save (which was to give the lease up)...
    store.fail("release")  # ...and the release after it both fail
    with pytest.raises(Exception, match="injected"):
        await conv.send("two")
    # The lease is still held in the store, by this process: within lock_wait, not lease_ttl, it is back.
    assert (await conv.send("three")).text == "You said: three"
    assert await conv.end()


# ------------------------------------------------------------------ renewal


async def test_a_long_turn_renews_its_lease_and_its_last_save_gives_it_up(
    client: AsyncAgentClient, admin: Admin
) -> None:
    time = FakeTime()
    store = MemoryStore(clock=time.time)
    conversations = Conversations(client, store=store)
    conversations._locks = LocalLocks(keeper=LeaseKeeper(clock=time))
    conv = conversations.get("long-turn", lease_ttl=0.6)
    await conv.send("warm up")
    admin.faults({"route": "send_message", "latency_ms": 300, "times": 1})
    turn = asyncio.create_task(conv.send("slow"))
    while "slow" not in [t["text"] for t in admin.turns()]:
        await asyncio.sleep(0.01)
    await time.advance(3.0)  # five ttls pass while the agent thinks: only renewal keeps the lease
    assert (await turn).text == "You said: slow"  # its fenced saves were accepted
    # The turn's last save released the lease: another worker takes it at once, with the next fence.
    lease = await store.acquire("long-turn", owner="other", ttl=5.0, wait=0)
    assert lease.fence == 3
    await store.release(lease)
    await conv.end()


async def test_two_managers_in_one_process_never_hold_a_conversation_at_once(client: AsyncAgentClient) -> None:
    """The store lets a lease's own owner take it again (an acquire whose answer was lost must not lock a
    process out): so each manager is an owner of its own, or two of them in one process (an async app and
    its blocking twin on one SQLite file) would both run a turn on a conversation at once."""
    store = MemoryStore()
    first, second = Conversations(client, store=store), Conversations(client, store=store)
    assert first._locks.owner != second._locks.owner
    lease = await store.acquire("shared", owner=first._locks.owner, ttl=30, wait=0)
    with pytest.raises(ConversationBusy):
        await second.get("shared", lock_wait=0.2).send("hi")
    await store.release(lease)
    assert (await second.get("shared").send("ping")).text == "You said: ping"
    await second.get("shared").end()
