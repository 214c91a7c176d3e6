"""What a turn tells the application when something fails: the outcomes table, and the truth about
delivery whatever the store does afterwards (issue 11 findings 2 and 6), against the emulator over HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, Conversations, Timeouts
from sessionforce.emulator import CallableAgent, RunningEmulator, TurnContext, run_emulator
from sessionforce.errors import (
    AuthError,
    ConversationError,
    Delivery,
    DeliveryUnknown,
    InvalidArgument,
    ServerError,
    SessionLocked,
    SessionNotFound,
    SessionStartFailed,
    StoreUnavailable,
    StreamInterrupted,
)
from sessionforce.lifecycle import EventKind
from sessionforce.lifecycle._outcomes import outcome_of
from sessionforce.store import TranscriptEntry
from tests.conversation.faulty_store import FaultyStore
from tests.support import Admin, client_kwargs

SLOW_MS = 800


def _echo(ctx: TurnContext) -> str:
    return f"You said: {ctx.text}"


@pytest.fixture
def slow_emu() -> Iterator[RunningEmulator]:
    """An echo agent that takes SLOW_MS to answer."""
    with run_emulator(agents=[CallableAgent(_echo, name="Slow", latency_ms=SLOW_MS)]) as emu:
        yield emu


@pytest.fixture
def store() -> FaultyStore:
    return FaultyStore()


@pytest.fixture
async def faulty(emu: RunningEmulator, store: FaultyStore) -> AsyncIterator[Conversations]:
    async with AsyncAgentClient(**client_kwargs(emu)) as client:
        yield Conversations(client, store=store)


async def break_when_accepted(admin: Admin, store: FaultyStore, text: str) -> None:
    """Break the store's writes the moment the agent has accepted ``text`` (its answer still to come)."""
    while text not in [t["text"] for t in admin.turns()]:
        await asyncio.sleep(0.01)
    store.break_()


def entries_for(entries: list[TranscriptEntry], text: str) -> list[TranscriptEntry]:
    return [e for e in entries if e.text == text]


# ------------------------------------------------------------------ the table


@pytest.mark.parametrize(
    ("exc", "kind", "sent", "event"),
    [
        (StreamInterrupted("cut"), "delivery_unknown", True, EventKind.DELIVERY_UNKNOWN),
        (DeliveryUnknown("no answer"), "delivery_unknown", None, EventKind.DELIVERY_UNKNOWN),
        (asyncio.CancelledError(), "delivery_unknown", None, EventKind.DELIVERY_UNKNOWN),
        (GeneratorExit(), "delivery_unknown", True, EventKind.DELIVERY_UNKNOWN),
        (SessionLocked("423"), "error", False, None),
        (SessionNotFound("404"), "error", False, None),
        (InvalidArgument("bad"), "error", False, None),
        (ServerError("500"), "error", None, None),
        (RuntimeError("bug"), "error", None, None),
    ],
)
def test_each_failure_has_one_row_the_most_specific_class_wins(
    exc: BaseException, kind: str, sent: bool | None, event: EventKind | None
) -> None:
    outcome = outcome_of(exc)
    assert (outcome.kind, outcome.sent, outcome.event) == (kind, sent, event)


async def test_send_runs_no_async_generator(conversations: Conversations) -> None:
    """Issue 12: a non-streamed send is plain coroutines, start to end (an async generator costs the
    event loop's bookkeeping on every turn)."""
    conv = conversations.get("no-generator")
    await conv.send("warm up")
    made: list[object] = []
    first_iter, finalizer = sys.get_asyncgen_hooks()

    def count(agen: Any) -> None:
        made.append(agen)
        if first_iter is not None:
            first_iter(agen)

    sys.set_asyncgen_hooks(firstiter=count, finalizer=finalizer)
    try:
        await conv.send("hi")
    finally:
        sys.set_asyncgen_hooks(firstiter=first_iter, finalizer=finalizer)
    assert made == []
    await conv.end()


# ------------------------------------------------------------------ finding 2: the store fails afterwards


async def test_no_answer_then_store_failure_is_still_maybe_delivered(
    emu: RunningEmulator, admin: Admin, store: FaultyStore
) -> None:
    async with AsyncAgentClient(**client_kwargs(emu), timeouts=Timeouts(read=0.5)) as client:
        conv = Conversations(client, store=store).get("no-answer")
        await conv.send("one")
        admin.faults({"route": "send_message", "latency_ms": 1000, "times": 1})
        breaker = asyncio.create_task(break_when_accepted(admin, store, "two"))
        with pytest.raises(DeliveryUnknown) as raised:
            await conv.send("two")
        await breaker
        assert "save" in store.failures  # the outcome could not be recorded...
        assert raised.value.delivery is Delivery.MAYBE_DELIVERED  # ...and the app is told the truth anyway
        assert "nothing was sent" not in str(raised.value).lower()
        store.mend()
        await asyncio.sleep(0.6)  # the emulator finishes the turn it accepted
        reply = await asyncio.wait_for(conv.send("three"), 5)  # no lock-out: the lease was given back
        assert reply.interrupted_turn is not None
        assert reply.interrupted_turn.text == "two"
        [entry] = entries_for(await conv.transcript(), "two")  # exactly one entry, with the real cause
        assert entry.kind == "delivery_unknown"
        assert "timed out" in entry.detail["error"]
        assert entry.detail["recorded_late"] is True
        await conv.end()
    assert [t["text"] for t in admin.turns()] == ["one", "two", "three"]


async def test_answered_then_store_failure_hands_over_the_reply_as_answered(
    slow_emu: RunningEmulator, store: FaultyStore
) -> None:
    admin = Admin(slow_emu.url)
    async with AsyncAgentClient(**client_kwargs(slow_emu)) as client:
        conv = Conversations(client, store=store).get("answered")
        breaker = asyncio.create_task(break_when_accepted(admin, store, "cancel my order"))
        with pytest.raises(StoreUnavailable) as raised:
            await conv.send("cancel my order")
        await breaker
        error = raised.value
        assert error.reply is not None
        assert error.reply.text == "You said: cancel my order"
        assert error.delivery is Delivery.ANSWERED
        assert "answered" in str(error).lower()
        assert "nothing was sent" not in str(error).lower()
        store.mend()
        after = await asyncio.wait_for(conv.send("next"), 5)  # the lease the failed save kept is given back
        assert after.interrupted_turn is None  # not interrupted: answered, and the app has the reply
        [entry] = entries_for(await conv.transcript(), "cancel my order")  # recorded once the store is back
        assert entry.kind == "turn"
        assert entry.reply is not None
        assert entry.reply[0]["message"] == "You said: cancel my order"
        assert (await conv.record()).turns == 2  # type: ignore[union-attr]
        await conv.end()
    assert [t["text"] for t in admin.turns()] == ["cancel my order", "next"]
    admin.http.close()


async def test_a_store_failing_before_the_turn_says_nothing_was_sent(
    faulty: Conversations, store: FaultyStore, admin: Admin
) -> None:
    store.break_("acquire")
    with pytest.raises(StoreUnavailable) as raised:
        await faulty.get("down-first").send("hello")
    assert raised.value.delivery is Delivery.NOT_SENT
    assert "nothing was sent" in str(raised.value).lower()
    assert admin.requests("start_session") == 0
    assert admin.turns() == []


async def test_a_store_failing_at_the_write_ahead_sends_nothing_and_says_so(
    faulty: Conversations, store: FaultyStore, admin: Admin
) -> None:
    conv = faulty.get("write-ahead")
    await conv.send("one")
    store.fail("save")  # the next save is the pending turn's write-ahead
    with pytest.raises(StoreUnavailable) as raised:
        await conv.send("two")
    assert raised.value.delivery is Delivery.NOT_SENT
    assert [t["text"] for t in admin.turns()] == ["one"]
    [entry] = entries_for(await conv.transcript(), "two")
    assert (entry.kind, entry.detail["sent"]) == ("error", False)
    await conv.end()


async def test_a_cancelled_turn_whose_outcome_cannot_be_recorded_is_still_cancelled(
    slow_emu: RunningEmulator, store: FaultyStore
) -> None:
    admin = Admin(slow_emu.url)
    async with AsyncAgentClient(**client_kwargs(slow_emu)) as client:
        conv = Conversations(client, store=store).get("cancelled")
        turn = asyncio.create_task(conv.send("slow"))
        await break_when_accepted(admin, store, "slow")
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
        store.mend()
        await asyncio.sleep(SLOW_MS / 1000)
        reply = await asyncio.wait_for(conv.send("after"), 5)
        assert reply.interrupted_turn is not None
        assert reply.interrupted_turn.text == "slow"
        [entry] = entries_for(await conv.transcript(), "slow")
        assert (entry.kind, entry.detail["error"]) == ("delivery_unknown", "the turn was cancelled while in flight")
        await conv.end()
    admin.http.close()


async def test_a_cut_stream_whose_outcome_cannot_be_recorded_is_still_stream_interrupted(
    conversations: Conversations, admin: Admin, client: AsyncAgentClient
) -> None:
    store = FaultyStore()
    conv = Conversations(client, store=store).get("cut-stream")
    await conv.send("hello")
    admin.faults({"route": "stream_message", "drop_after_chunks": 1, "times": 1})
    store.fail("save")  # the save recording the cut stream (the write-ahead goes through first)
    store.fail("save", skip=1)
    with pytest.raises(StreamInterrupted) as raised:
        await conv.stream("What are your opening hours?").final_reply()
    assert raised.value.delivery is Delivery.MAYBE_DELIVERED
    await conv.end()


# ------------------------------------------------------------------ finding 6: a resume that fails


@pytest.mark.parametrize(("status", "error"), [(503, ServerError), (401, AuthError)])
async def test_a_resume_whose_start_fails_leaves_one_not_sent_entry(
    conversations: Conversations, admin: Admin, status: int, error: type[Exception]
) -> None:
    conv = conversations.get(f"resume-{status}")
    await conv.send("first")
    admin.faults(
        {"route": "send_message", "expire_session": True, "times": 1},
        {"route": "start_session", "status": status},
    )
    with pytest.raises(error) as raised:
        await conv.send("second")
    assert getattr(raised.value, "delivery", None) is Delivery.NOT_SENT
    [entry] = entries_for(await conv.transcript(), "second")
    assert (entry.kind, entry.detail["sent"]) == ("error", False)
    assert [t["text"] for t in admin.turns()] == ["first"]
    admin.faults()
    assert (await conv.send("third")).text == "You said: third"  # nothing left behind
    await conv.end()


async def test_a_replay_preamble_cut_off_is_not_the_users_turn(conversations: Conversations, admin: Admin) -> None:
    conv = conversations.get("replay-cut", resume="replay")
    await conv.send("my name is Ada")
    admin.faults(
        {"route": "send_message", "expire_session": True, "times": 1},  # the user's turn: 404
        {"route": "send_message", "reset": "after", "every": 2, "times": 1},  # the preamble: answer cut
    )
    with pytest.raises(SessionStartFailed) as raised:
        await conv.send("what is my name?")
    assert not isinstance(raised.value, DeliveryUnknown)
    assert raised.value.delivery is Delivery.NOT_SENT
    assert isinstance(raised.value.__cause__, DeliveryUnknown)  # the preamble's own fate
    entries = await conv.transcript()
    [user] = entries_for(entries, "what is my name?")
    assert (user.kind, user.detail["sent"]) == ("error", False)
    [preamble] = [e for e in entries if e.kind == "preamble"]
    assert preamble.detail["delivery_unknown"] is True
    assert "what is my name?" not in [t["text"] for t in admin.turns()]
    admin.faults()
    await conv.end()


async def test_a_session_started_but_not_recorded_is_ended(
    faulty: Conversations, store: FaultyStore, admin: Admin
) -> None:
    """Every session ended: one the store failed to record could never be found by the reaper."""
    store.fail("save", skip=1)  # the record's creation passes; the save of the started session fails
    with pytest.raises(ConversationError) as raised:
        await faulty.get("unrecorded").send("hello")
    assert raised.value.delivery is Delivery.NOT_SENT
    assert [s["state"] for s in admin.sessions()] == ["ended"]
    assert admin.turns() == []
