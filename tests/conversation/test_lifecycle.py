"""The conversation lifecycle against the emulator over HTTP: sequencing, one turn at a time, expiry and
resume, guaranteed end. Claims are proven from the emulator's counters, not from our own records."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest

from sessionforce import AsyncAgentClient, Awaiting, BlockingConversations, Conversations
from sessionforce.agent_api import EndOfTurnEvent, TextChunkEvent
from sessionforce.emulator import RunningEmulator
from sessionforce.errors import BadRequest, ConversationBusy, ConversationEnded, DeliveryUnknown
from sessionforce.lifecycle import ConversationEvent, ConversationReply, reap_idle
from sessionforce.store import ConversationStatus, MemoryStore, SessionState
from tests.support import Admin, client_kwargs


def assert_sequences_increase(admin: Admin) -> None:
    by_session: dict[str, list[int]] = {}
    for turn in admin.turns():
        by_session.setdefault(turn["sessionId"], []).append(turn["sequenceId"])
    for session, seqs in by_session.items():
        assert seqs == sorted(set(seqs)), f"session {session}: {seqs}"


async def test_scoped_conversation_ends_its_session(conversations: Conversations, admin: Admin) -> None:
    async with conversations.get("ticket-42") as conv:
        first = await conv.send("What are your opening hours?")
        second = await conv.send("my name is Ada")
    assert "Tuesday" in first.text
    assert second.sequence_id == 2
    [session] = admin.sessions()
    assert session["state"] == "ended"
    record = await conv.record()
    assert record is not None
    assert record.status is ConversationStatus.IDLE
    assert [s.state for s in record.sessions] == [SessionState.ENDED]
    kinds = [e.kind for e in await conv.transcript()]
    assert kinds == ["session_started", "turn", "turn", "session_ended"]


async def test_detached_conversation_carries_on_across_objects(conversations: Conversations, admin: Admin) -> None:
    # Two requests of a web app, each with its own Conversation object for the same id.
    await conversations.get("user-7").send("my name is Grace")
    reply = await conversations.get("user-7").send("what is my name?")
    assert reply.text == "Your name is Grace."
    assert len(admin.sessions()) == 1
    assert admin.sessions()[0]["state"] == "active"  # stays open between requests
    assert await conversations.get("user-7").end()
    assert admin.sessions()[0]["state"] == "ended"
    assert not await conversations.get("user-7").end()  # nothing live: not an error


async def test_50_concurrent_tasks_queue_in_order_with_no_423(conversations: Conversations, admin: Admin) -> None:
    conv = conversations.get("busy")
    texts = [f"message {i}" for i in range(50)]
    replies = await asyncio.gather(*(conv.send(t) for t in texts))
    assert [r.text for r in replies] == [f"You said: {t}" for t in texts]
    counters = admin.counters()
    assert counters["locked"] == 0
    turns = admin.turns()
    assert [t["text"] for t in turns] == texts  # FIFO, each delivered exactly once
    assert [t["sequenceId"] for t in turns] == list(range(1, 51))


def test_50_threads_on_the_blocking_api_with_no_423(sync_conversations: BlockingConversations, admin: Admin) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results.append(sync_conversations.get("threads").send(f"thread {i}").text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == sorted(f"You said: thread {i}" for i in range(50))
    assert admin.counters()["locked"] == 0
    texts = [t["text"] for t in admin.turns()]
    assert Counter(texts) == Counter(f"thread {i}" for i in range(50))
    assert_sequences_increase(admin)


async def test_forced_expiry_resumes_and_delivers_the_turn_exactly_once(
    conversations: Conversations, admin: Admin
) -> None:
    events: list[ConversationEvent] = []
    async with conversations.get("expiring", hooks=[("*", events.append)]) as conv:
        await conv.send("first")
        old = admin.sessions()[0]["sessionId"]
        admin.expire(old)
        reply = await conv.send("second")
        assert reply.resumed
        assert reply.resume_reason == "expired"
        assert reply.text == "You said: second"
        assert reply.session_id != old
    texts = Counter(t["text"] for t in admin.turns())
    assert texts == Counter({"first": 1, "second": 1})
    assert admin.requests("send_message", 404) == 1
    kinds = [e.kind.value for e in events]
    assert "resumed" in kinds
    assert kinds.count("session_started") == 2
    record = await conv.record()
    assert record is not None
    assert [s.state for s in record.sessions] == [SessionState.EXPIRED, SessionState.ENDED]
    assert_sequences_increase(admin)
    assert [s["state"] for s in admin.sessions()].count("active") == 0


async def test_stream_resumes_on_404_too(conversations: Conversations, admin: Admin) -> None:
    conv = conversations.get("streamer")
    await conv.send("hello")
    admin.expire(admin.sessions()[0]["sessionId"])
    stream = conv.stream("What are your opening hours?")
    events = [e async for e in stream]
    assert isinstance(events[-1], EndOfTurnEvent)
    assert isinstance(events[-1].reply, ConversationReply)
    assert events[-1].reply.resumed
    chunks = "".join(e.text for e in events if isinstance(e, TextChunkEvent))
    assert chunks == events[-1].reply.text
    assert Counter(t["text"] for t in admin.turns())["What are your opening hours?"] == 1
    await conv.end()


async def test_client_idle_policy_starts_fresh_without_a_404(conversations: Conversations, admin: Admin) -> None:
    now = [1_000_000.0]
    conv = conversations.get("idle", idle_timeout=600, clock=lambda: now[0])
    await conv.send("one")
    now[0] += 601
    reply = await conv.send("two")
    assert reply.resumed
    assert reply.resume_reason == "idle"
    assert admin.requests("send_message", 404) == 0
    states = sorted(s["state"] for s in admin.sessions())
    assert states == ["active", "ended"]  # the idle session was ended (DELETE), not left to expire
    await conv.end()


async def test_idle_policy_survives_a_failing_end_of_the_stale_session(
    conversations: Conversations, admin: Admin
) -> None:
    now = [2_000_000.0]
    conv = conversations.get("idle-end-fails", idle_timeout=60, clock=lambda: now[0])
    await conv.send("one")
    now[0] += 61
    admin.faults({"route": "end_session", "status": 500})
    reply = await conv.send("two")
    assert reply.resumed
    assert reply.text == "You said: two"
    admin.faults()
    await conv.end()


async def test_replay_resume_carries_context_into_the_new_session(conversations: Conversations, admin: Admin) -> None:
    async with conversations.get("replay", resume="replay") as conv:
        await conv.send("my name is Ada")
        admin.expire(admin.sessions()[0]["sessionId"])
        reply = await conv.send("what is my name?")
    assert reply.resumed
    assert reply.text == "Your name is Ada."
    kinds = [e.kind for e in await conv.transcript()]
    assert "preamble" in kinds
    # Without replay the new session does not know the name: resuming is observable.
    async with conversations.get("plain") as conv:
        await conv.send("my name is Ada")
        admin.expire(next(s["sessionId"] for s in admin.sessions() if s["state"] == "active"))
        assert "don't know your name" in (await conv.send("what is my name?")).text


async def test_answering_inquire_and_confirm(conversations: Conversations) -> None:
    async with conversations.get("booking") as conv:
        asked = await conv.send("I'd like to book a repair")
        assert asked.awaiting is Awaiting.INPUT
        confirm = await asked.answer("2026-12-03")
        assert confirm.awaiting is Awaiting.CONFIRMATION
        done = await confirm.answer("yes")
        assert done.actions[0]["value"]["date"] == "2026-12-03"
        await done.feedback("GOOD", text="quick")
        with pytest.raises(ValueError, match="asks nothing"):
            await done.answer("what?")


async def test_agent_ending_the_session_is_surfaced(conversations: Conversations, admin: Admin) -> None:
    conv = conversations.get("bye")
    reply = await conv.send("goodbye")
    assert reply.ended
    assert reply.end_reason == "Action"
    with pytest.raises(ConversationEnded, match="on_agent_end"):
        await conv.send("hello again")
    restarted = conversations.get("bye", on_agent_end="restart")
    again = await restarted.send("hello again")
    assert again.resumed
    assert again.resume_reason == "agent_ended"
    assert len(admin.sessions()) == 2
    await restarted.end()


async def test_escalation_is_surfaced(conversations: Conversations) -> None:
    async with conversations.get("escalate") as conv:
        reply = await conv.send("can I talk to a human?")
        assert reply.escalated
        record = await conv.record()
        assert record is not None
        assert record.escalated


async def test_session_ends_on_exception_and_on_cancellation(conversations: Conversations, admin: Admin) -> None:
    async def crash() -> None:
        async with conversations.get("boom") as conv:
            await conv.send("hi")
            raise RuntimeError("app bug")

    with pytest.raises(RuntimeError):
        await crash()

    async def chat() -> None:
        async with conversations.get("cancelled") as conv:
            await conv.send("hi")
            await asyncio.sleep(30)

    task = asyncio.create_task(chat())
    while len(admin.sessions()) < 2 or len(admin.turns()) < 2:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s["state"] for s in admin.sessions()] == ["ended", "ended"]
    assert [s["endReason"] for s in admin.sessions()] == ["Error", "Error"]


async def test_cancelling_a_turn_in_flight_still_ends_the_session(conversations: Conversations, admin: Admin) -> None:
    admin.faults({"route": "send_message", "latency_ms": 400, "times": 1})

    async def chat() -> None:
        async with conversations.get("slow") as conv:
            await conv.send("slow turn")

    task = asyncio.create_task(chat())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert [s["state"] for s in admin.sessions()] == ["ended"]
    entries = await conversations.get("slow").transcript()
    assert "delivery_unknown" in [e.kind for e in entries]
    record = await conversations.get("slow").record()
    assert record is not None
    assert record.pending is None


async def test_delivery_unknown_is_reported_and_the_next_turn_carries_on(emu: RunningEmulator, admin: Admin) -> None:
    from sessionforce import Timeouts

    async with (
        AsyncAgentClient(**client_kwargs(emu), timeouts=Timeouts(read=0.3)) as client,
        Conversations(client, store=MemoryStore()) as conversations,
    ):
        conv = conversations.get("timeout")
        await conv.send("one")
        admin.faults({"route": "send_message", "latency_ms": 800, "times": 1})
        with pytest.raises(DeliveryUnknown):
            await conv.send("two")
        await asyncio.sleep(0.8)
        reply = await conv.send("three")
        assert reply.sequence_id == 3  # never reused, even though "two" may not have arrived
        assert [e.kind for e in await conv.transcript()].count("delivery_unknown") == 1
        await conv.end()
    assert [t["text"] for t in admin.turns()] == ["one", "two", "three"]


async def test_lock_wait_bound_raises_conversation_busy(conversations: Conversations, admin: Admin) -> None:
    admin.faults({"route": "send_message", "latency_ms": 800, "times": 1})
    conv = conversations.get("waiting", lock_wait=0.2)
    first = asyncio.create_task(conv.send("slow"))
    await asyncio.sleep(0.1)
    with pytest.raises(ConversationBusy, match="lock_wait"):
        await conv.send("impatient")
    assert (await first).text == "You said: slow"
    assert admin.counters()["locked"] == 0
    await conv.end()


async def test_a_turn_that_could_not_start_its_session_is_in_the_transcript(
    conversations: Conversations, admin: Admin
) -> None:
    admin.faults({"route": "start_session", "status": 400, "times": 1})
    conv = conversations.get("no-session")
    with pytest.raises(BadRequest):
        await conv.send("hello?")
    [entry] = await conv.transcript()
    assert (entry.kind, entry.text, entry.sequence_id, entry.detail["sent"]) == ("error", "hello?", None, False)
    assert admin.requests("send_message") == 0
    assert (await conv.send("and again")).text == "You said: and again"  # nothing left behind
    await conv.end()


async def test_reaper_ends_idle_detached_sessions(conversations: Conversations, admin: Admin) -> None:
    now = [5_000_000.0]
    for name in ("a", "b"):
        await conversations.get(name, clock=lambda: now[0]).send("hi")
    now[0] += 100
    await conversations.get("c", clock=lambda: now[0]).send("hi")
    reaped = await reap_idle(conversations, idle_for=50, clock=lambda: now[0])
    assert sorted(reaped) == ["a", "b"]
    states = {s["externalSessionKey"]: s["state"] for s in admin.sessions()}
    assert sorted(states.values()) == ["active", "ended", "ended"]
    assert [s["endReason"] for s in admin.sessions() if s["state"] == "ended"] == ["Expiration", "Expiration"]
    assert await reap_idle(conversations, idle_for=50, clock=lambda: now[0]) == []  # nothing left to reap
    await conversations.get("c").end()


async def test_transcript_exports_as_json_lines_without_secrets(
    emu: RunningEmulator, conversations: Conversations, tmp_path: Any
) -> None:
    async with conversations.get("export") as conv:
        await conv.send("my name is Ada")
    path = tmp_path / "t.jsonl"
    assert await conv.export_jsonl(path) == 3  # session_started, turn, session_ended
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1]["text"] == "my name is Ada"
    assert lines[1]["reply"][0]["message"] == "Nice to meet you, Ada!"
    assert lines[1]["client_version"]
    token = await conversations.client.fetch_token()
    assert emu.client_secret not in path.read_text()
    assert token.value not in path.read_text()


async def test_log_records_carry_the_ids(conversations: Conversations, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sessionforce")
    async with conversations.get("logged") as conv:
        await conv.send("hi")
    records = [r for r in caplog.records if r.name.startswith("sessionforce")]
    assert records
    for r in records:
        assert r.conversationId == "logged"  # type: ignore[attr-defined]
        assert r.externalSessionKey  # type: ignore[attr-defined]
    assert any(getattr(r, "sequenceId", None) == 1 for r in records)


async def test_new_session_greetings_and_agent_end_events(conversations: Conversations, admin: Admin) -> None:
    events: list[ConversationEvent] = []
    conv = conversations.get("greetings", on_agent_end="restart", hooks=[("*", events.append)])
    first = await conv.send("hello")
    assert first.greeting is not None
    assert "Cog & Chain" in first.greeting.text
    assert (await conv.send("hello again")).greeting is None  # same session: no new greeting
    bye = await conv.send("goodbye")
    ended = [e for e in events if e.kind.value == "ended"]
    assert ended[-1].session_id == bye.session_id  # the session the agent ended, not None
    after = await conv.send("I'm back")
    assert after.resume_reason == "agent_ended"
    assert after.greeting is not None
    await conv.end()


async def test_a_session_the_app_ended_is_followed_by_a_fresh_one_not_a_resume(conversations: Conversations) -> None:
    events: list[ConversationEvent] = []
    conv = conversations.get("fresh", hooks=[("*", events.append)])
    await conv.send("one")
    await conv.end()
    reply = await conv.send("two")
    assert not reply.resumed
    assert reply.greeting is not None
    assert "resumed" not in [e.kind.value for e in events]
    await conv.end()


async def test_answering_with_a_stream(conversations: Conversations) -> None:
    async with conversations.get("stream-answer") as conv:
        asked = await conv.send("book a repair")
        confirm = await asked.stream_answer("2026-12-05").final_reply()
        assert confirm.awaiting is Awaiting.CONFIRMATION
        done = await confirm.stream_answer("yes").final_reply()
        assert done.actions[0]["value"]["date"] == "2026-12-05"


async def test_recover_reports_a_crashed_turn_without_sending_anything(
    conversations: Conversations, admin: Admin
) -> None:
    from sessionforce.store import PendingTurn

    conv = conversations.get("crashed")
    await conv.send("first")
    # What a sender killed mid-turn leaves behind: its turn written ahead, never cleared.
    record = await conv.record()
    assert record is not None
    pending = PendingTurn(sequence_id=2, session_id=record.session_id or "", text="lost?", started_at=1.0,
                          owner="other-host:42")
    await conversations.store.save(record.replace(pending=pending, last_sequence_id=2))
    turns_before = len(admin.turns())

    reported = await conv.recover()
    assert reported is not None
    assert (reported.sequence_id, reported.text, reported.owner) == (2, "lost?", "other-host:42")
    assert await conv.recover() is None  # reported once
    entries = [e for e in await conv.transcript() if e.kind == "delivery_unknown"]
    assert [(e.sequence_id, e.detail["owner"]) for e in entries] == [(2, "other-host:42")]
    assert len(admin.turns()) == turns_before  # nothing was sent
    assert (await conv.send("next")).sequence_id == 3  # the reported id is never reused
    await conv.end()
