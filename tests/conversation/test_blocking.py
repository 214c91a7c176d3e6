"""The blocking conversation API: the same lifecycle, driven from plain (non-async) code."""

from __future__ import annotations

from sessionforce import Awaiting, BlockingConversations
from sessionforce.agent_api import EndOfTurnEvent, TextChunkEvent
from sessionforce.blocking import BlockingReply
from sessionforce.lifecycle import ConversationEvent
from tests.support import Admin


def test_scoped_blocking_conversation(sync_conversations: BlockingConversations, admin: Admin) -> None:
    events: list[ConversationEvent] = []
    with sync_conversations.get("desk-1") as conv:
        conv.on("*", events.append)
        greeting = conv.start()
        assert greeting is not None
        assert "Cog & Chain" in greeting.text
        asked = conv.send("book a repair")
        assert isinstance(asked, BlockingReply)
        assert asked.awaiting is Awaiting.INPUT
        confirm = asked.answer("2026-12-24")
        done = confirm.answer("yes")
        assert done.actions[0]["value"]["status"] == "Booked"
        done.feedback("GOOD")
        stream = conv.stream("What are your opening hours?")
        streamed = list(stream)
        assert isinstance(streamed[-1], EndOfTurnEvent)
        assert "".join(e.text for e in streamed if isinstance(e, TextChunkEvent)) == streamed[-1].reply.text
        assert [e.kind for e in conv.transcript()][:2] == ["session_started", "turn"]
    assert [s["state"] for s in admin.sessions()] == ["ended"]
    assert [t["sequenceId"] for t in admin.turns()] == [1, 2, 3, 4]
    assert {e.kind.value for e in events} >= {"session_started", "turn_sent", "reply", "ended"}


def test_blocking_resume_after_expiry(sync_conversations: BlockingConversations, admin: Admin) -> None:
    conv = sync_conversations.get("desk-2", resume="replay")
    conv.send("my name is Lin")
    admin.expire(admin.sessions()[0]["sessionId"])
    reply = conv.send("what is my name?")
    assert reply.resumed
    assert reply.text == "Your name is Lin."
    assert conv.end()
