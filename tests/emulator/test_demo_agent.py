"""The built-in demo agent (bike repair shop): every reply type, with the fields the reference lists."""

from __future__ import annotations

from typing import Any

from emulator_wire import Wire, assert_api_error

from sessionforce.emulator import DEMO_AGENT_ID, RunningEmulator

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
