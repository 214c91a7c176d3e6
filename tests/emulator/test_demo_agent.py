"""The built-in demo agent (bike repair shop): every reply type, with the fields the reference lists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from emulator_wire import Wire, assert_api_error

from sessionforce.emulator import DEMO_AGENT_ID, RunningEmulator, TurnContext
from sessionforce.emulator._agent_schema import parse_agent
from sessionforce.emulator._scripted import CONTEXT_MESSAGE, REPLAY_HEADER
from sessionforce.lifecycle import ReplayResume, ResumeContext
from sessionforce.store import TranscriptEntry

FIELDS = {
    "Inform": {"id", "type", "feedbackId", "planId", "isContentSafe", "message", "result", "citedReferences"},
    "Inquire": {"id", "type", "message", "collect"},
    "Confirm": {"id", "type", "message", "confirm"},
    "Escalate": {"id", "type", "feedbackId", "targets"},
    "Failure": {"id", "type", "code", "errors"},
    "SessionEnded": {"id", "type", "reason"},
}


class Chat:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.session_id = wire.session()
        self.sequence = 0

    def say(self, text: str, kind: str = "Text") -> list[dict[str, Any]]:
        self.sequence += 1
        response = self.wire.send(self.session_id, self.sequence, text, kind=kind)
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        for message in messages:
            assert set(message) >= FIELDS[message["type"]], message
        return messages


def test_demo_agent_id_is_salesforce_style(emu: RunningEmulator) -> None:
    assert len(DEMO_AGENT_ID) == 18
    assert DEMO_AGENT_ID.startswith("0Xx")
    assert DEMO_AGENT_ID.isalnum()
    assert emu.agent_ids == [DEMO_AGENT_ID] == [emu.default_agent_id]


def test_opening_hours_and_echo_fallback(wire: Wire) -> None:
    chat = Chat(wire)
    [hours] = chat.say("When are you open?")
    assert hours["type"] == "Inform"
    assert "Tuesday to Saturday" in hours["message"]
    [echo] = chat.say("purple elephants 17")
    assert echo["message"] == "You said: purple elephants 17"


def test_remembers_the_name_within_a_session_only(wire: Wire) -> None:
    chat = Chat(wire)
    assert chat.say("Hi, my name is Ada")[0]["message"] == "Nice to meet you, Ada!"
    assert chat.say("what is my name?")[0]["message"] == "Your name is Ada."
    fresh = Chat(wire)
    assert "don't know your name" in fresh.say("what is my name?")[0]["message"]


def test_booking_inquires_confirms_and_runs_an_action(wire: Wire) -> None:
    chat = Chat(wire)
    [inquire] = chat.say("I'd like to book a repair")
    assert inquire["type"] == "Inquire"
    assert inquire["collect"]["name"] == "date"
    [confirm] = chat.say("2030-05-14")
    assert confirm["type"] == "Confirm"
    assert "2030-05-14" in confirm["message"]
    assert confirm["confirm"]["parameters"] == {"date": "2030-05-14"}
    [done] = chat.say("yes", kind="Reply")
    assert done["type"] == "Inform"
    [result] = done["result"]
    assert result["name"] == "BookRepair"
    assert result["value"] == {"bookingId": "RPR-3", "date": "2030-05-14", "status": "Booked"}


def test_booking_declined(wire: Wire) -> None:
    chat = Chat(wire)
    chat.say("book a repair")
    chat.say("tomorrow")
    [declined] = chat.say("no thanks", kind="Reply")
    assert declined["message"] == "Okay, I haven't booked anything."
    assert chat.say("hm")[0]["message"] == "You said: hm"  # the flow is over


def test_cancel_message_type_cancels_a_pending_flow(wire: Wire) -> None:
    chat = Chat(wire)
    chat.say("book a repair")
    assert chat.say("", kind="Cancel")[0]["message"] == "Okay, I've cancelled that."


def test_order_status_action_with_and_without_the_number(wire: Wire) -> None:
    chat = Chat(wire)
    [status] = chat.say("where is my order 4711?")
    assert status["result"][0]["value"] == {"orderNumber": "4711", "status": "Ready for pickup"}
    assert chat.say("what's my order status")[0]["type"] == "Inquire"
    assert chat.say("99")[0]["result"][0]["value"]["orderNumber"] == "99"


def test_failing_action(wire: Wire) -> None:
    messages = Chat(wire).say("I want a refund")
    assert [m["type"] for m in messages] == ["Inform", "Failure"]
    assert messages[1]["code"] == "ACTION_FAILED"
    assert messages[1]["errors"]


def test_knowledge_answer_cites_references(wire: Wire) -> None:
    [answer] = Chat(wire).say("what's your warranty?")
    [reference] = answer["citedReferences"]
    assert reference["type"] == "link"
    assert reference["value"].startswith("https://")
    assert reference["inlineMetadata"][0]["claim"]


def test_escalation_to_a_human(wire: Wire) -> None:
    messages = Chat(wire).say("can I talk to a human please")
    assert [m["type"] for m in messages] == ["Inform", "Escalate"]
    assert messages[1]["targets"] == [{"type": "Queue", "value": "Workshop_Front_Desk"}]
    assert messages[1]["feedbackId"]


def test_goodbye_ends_the_session(wire: Wire) -> None:
    chat = Chat(wire)
    messages = chat.say("ok, goodbye")
    assert [m["type"] for m in messages] == ["Inform", "SessionEnded"]
    assert messages[1]["reason"] == "Action"
    assert_api_error(wire.send(chat.session_id, 99), 404)
    session = wire.admin("GET", f"/sessions/{chat.session_id}")
    assert (session["state"], session["endReason"]) == ("ended", "Action")


def test_transfer_message_types_get_an_answer(wire: Wire) -> None:
    chat = Chat(wire)
    assert "couldn't connect" in chat.say("", kind="TransferFailed")[0]["message"]
    assert "connected" in chat.say("", kind="TransferSucceeded")[0]["message"]


@pytest.mark.parametrize("text", ["hi there", "Hello!", "hey", "Good morning", "hi, can you help me?"])
def test_a_greeting_is_answered_with_what_the_agent_can_do(wire: Wire, text: str) -> None:
    [hello] = Chat(wire).say(text)
    assert hello["type"] == "Inform"
    assert "You said" not in hello["message"]
    for skill in ("opening hours", "book a repair", "order", "person"):
        assert skill in hello["message"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Hi, my name is Ada", "Nice to meet you, Ada!"),  # a topic in the same turn wins over the greeting
    ("hello, when are you open?", "Tuesday to Saturday"),
    ("this is hi", "You said: this is hi"),  # a greeting opens the turn, it is not any word "hi"
    ("hiking trails?", "You said: hiking trails?"),
])
def test_greeting_gives_way_to_topics_and_is_a_whole_word(wire: Wire, text: str, expected: str) -> None:
    assert expected in Chat(wire).say(text)[0]["message"]


def _preamble(*turns: tuple[str, str]) -> str:
    """The preamble the lifecycle's ``resume="replay"`` really sends for these (user, agent) turns."""
    history = [TranscriptEntry(kind="turn", at=float(n), text=user, reply=[{"type": "Inform", "message": agent}])
               for n, (user, agent) in enumerate(turns)]
    context = ResumeContext(conversation_id="c", reason="expired", previous_session_id="s", history=history)
    preamble = asyncio.run(ReplayResume().plan(context)).preamble
    assert preamble is not None
    return preamble


def test_replay_header_is_the_one_the_lifecycle_sends() -> None:
    assert _preamble(("hi", "Hello!")).split("\n")[0] == REPLAY_HEADER


def test_replay_preamble_carries_facts_without_re_asking(wire: Wire) -> None:
    chat = Chat(wire)
    messages = chat.say(_preamble(
        ("my name is Ada", "Nice to meet you, Ada!"),
        ("what is my name?", "Your name is Ada."),  # a replayed question does not forget the fact
        ("book a repair", "Sure. Which date would you like to bring your bike in?"),  # leaves nothing waiting
    ))
    assert messages == [{**messages[0], "type": "Inform", "message": CONTEXT_MESSAGE}]
    assert chat.say("what is my name?")[0]["message"] == "Your name is Ada."
    assert "90-day warranty" in chat.say("warranty?")[0]["message"]  # not taken as the repair date


def test_replay_preamble_drops_a_pending_question_and_keeps_the_latest_fact(wire: Wire) -> None:
    chat = Chat(wire)
    assert chat.say("book a repair")[0]["type"] == "Inquire"
    chat.say(_preamble(("my name is Ada", "Nice to meet you, Ada!"), ("call me Bo", "Nice to meet you, Bo!")))
    assert chat.say("2030-05-14")[0]["message"] == "You said: 2030-05-14"  # the inquire no longer waits
    assert chat.say("what is my name?")[0]["message"] == "Your name is Bo."


def test_replay_preamble_takes_only_user_lines_as_the_users(wire: Wire) -> None:
    chat = Chat(wire)
    preamble = f"{REPLAY_HEADER}\nUser: hello\nmy name is Ada\nAgent: Hi.\nmy name is Eve\nUser: ok"
    assert chat.say(preamble)[0]["message"] == CONTEXT_MESSAGE
    assert chat.say("what is my name?")[0]["message"] == "Your name is Ada."  # not Eve: the agent said that


def test_replay_preamble_in_a_scripted_agent_keeps_only_facts_it_can_fill() -> None:
    agent = parse_agent({"name": "City Bot", "context_message": "Got it.", "topics": [
        {"regex": r"i live in (?P<city>\w+)", "steps": [
            {"remember": {"city": "{city}", "street": "{street}"}}, {"inform": "Noted."}]},
    ]}, "test")
    memory: dict[str, Any] = {}
    ctx = TurnContext(session_id="s", agent_id=agent.id, sequence_id=1, message_type="Text",
                      text=f"{REPLAY_HEADER}\nUser: I live in Oslo\nAgent: Noted.", in_reply_to=None,
                      message={}, memory=memory, variables={}, turn=1)
    assert agent.respond(ctx) == [{"type": "Inform", "message": "Got it."}]
    assert memory == {"city": "Oslo"}  # a fact whose placeholder is unknown is not stored empty
