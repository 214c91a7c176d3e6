"""Session rules: start, send, sequenceId, 423, idle expiry, end, feedback — over real HTTP."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from emulator_wire import API, Wire, assert_api_error

from sessionforce.emulator import DEMO_AGENT_ID, RunningEmulator, run_emulator

INFORM_FIELDS = {"id", "type", "feedbackId", "planId", "isContentSafe", "message", "result", "citedReferences"}


def test_start_session_answers_with_id_links_and_greeting(wire: Wire, emu: RunningEmulator) -> None:
    response = wire.start()
    assert response.status_code == 200
    body = response.json()
    session_id = body["sessionId"]
    assert body["_links"]["messages"]["href"] == f"{emu.url}{API}/sessions/{session_id}/messages"
    assert body["_links"]["messagesStream"]["href"].endswith(f"/sessions/{session_id}/messages/stream")
    assert body["_links"]["end"]["href"].endswith(f"/sessions/{session_id}")
    assert body["_links"]["session"]["href"].endswith(f"/agents/{DEMO_AGENT_ID}/sessions")
    [greeting] = body["messages"]
    assert greeting["type"] == "Inform"
    assert set(greeting) >= INFORM_FIELDS
    assert "How can I help" in greeting["message"]


def test_unknown_agent_answers_404(wire: Wire) -> None:
    assert_api_error(wire.start("0XxNOSUCHAGENT0000"), 404, "0XxNOSUCHAGENT0000")


def _start_body(emu: RunningEmulator, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"externalSessionKey": str(uuid.uuid4()), "instanceConfig": {"endpoint": emu.url}}
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(("changes", "field"), [
    ({"externalSessionKey": None}, "externalSessionKey"),
    ({"externalSessionKey": 12}, "externalSessionKey"),
    ({"instanceConfig": None}, "instanceConfig"),
    ({"instanceConfig": "https://x"}, "instanceConfig"),
    ({"instanceConfig": {}}, "instanceConfig.endpoint"),
    ({"instanceConfig": {"endpoint": "acme"}}, "instanceConfig.endpoint"),
    ({"bypassUser": "yes"}, "bypassUser"),
    ({"variables": {"a": 1}}, "variables"),
    ({"variables": [{"name": "x", "type": "Banana", "value": 1}]}, "variables[0].type"),
    ({"variables": [{"name": "x", "type": "Number", "value": "one"}]}, "variables[0].value"),
    ({"streamingCapabilities": {"chunkTypes": "Text"}}, "streamingCapabilities.chunkTypes"),
])
def test_start_session_body_is_validated(wire: Wire, emu: RunningEmulator, changes: dict[str, Any], field: str) -> None:
    response = wire.start(body=_start_body(emu, **changes))
    assert_api_error(response, 400, f"'{field}'")


def test_non_json_body_answers_400(wire: Wire, emu: RunningEmulator) -> None:
    response = wire.http.post(f"{API}/agents/{emu.default_agent_id}/sessions", content=b"not json",
                              headers={**wire.auth, "content-type": "application/json"})
    assert_api_error(response, 400, "JSON")


@pytest.mark.parametrize(("message", "field"), [
    ({"type": "Text", "text": "hi"}, "message.sequenceId"),
    ({"sequenceId": "1", "type": "Text", "text": "hi"}, "message.sequenceId"),
    ({"sequenceId": 1.5, "type": "Text", "text": "hi"}, "message.sequenceId"),
    ({"sequenceId": 1, "text": "hi"}, "message.type"),
    ({"sequenceId": 1, "type": "Shout", "text": "hi"}, "message.type"),
    ({"sequenceId": 1, "type": "Text"}, "message.text"),
    ({"sequenceId": 1, "type": "Text", "text": 5}, "message.text"),
    ({"sequenceId": 1, "type": "Reply", "text": "yes", "inReplyToMessageId": 7}, "message.inReplyToMessageId"),
])
def test_send_body_is_validated(wire: Wire, message: dict[str, Any], field: str) -> None:
    session_id = wire.session()
    response = wire.http.post(f"{API}/sessions/{session_id}/messages", json={"message": message}, headers=wire.auth)
    assert_api_error(response, 400, f"'{field}'")
    assert wire.admin("GET", "/counters")["turns"] == []  # a rejected turn is not delivered


def test_missing_message_answers_400(wire: Wire) -> None:
    session_id = wire.session()
    response = wire.http.post(f"{API}/sessions/{session_id}/messages", json={}, headers=wire.auth)
    assert_api_error(response, 400, "'message'")


@pytest.mark.parametrize("kind", ["Text", "Reply", "Cancel", "TransferFailed", "TransferSucceeded", "PlanTemplate"])
def test_every_listed_message_type_is_accepted(wire: Wire, kind: str) -> None:
    session_id = wire.session()
    response = wire.send(session_id, 1, "yes", kind=kind, inReplyToMessageId="m-1")
    assert response.status_code == 200, response.text
    assert response.json()["messages"]


def test_sequence_id_must_increase_but_not_by_one(wire: Wire) -> None:
    session_id = wire.session()
    assert_api_error(wire.send(session_id, 0), 400, "sequenceId")
    assert wire.send(session_id, 1).status_code == 200
    assert_api_error(wire.send(session_id, 1), 400, "last accepted sequenceId (1)")
    assert wire.send(session_id, 1_740_760_662_466).status_code == 200  # Date.now()-style jumps are fine
    assert_api_error(wire.send(session_id, 5), 400, "(1740760662466)")
    turns = wire.admin("GET", "/counters")["turns"]
    assert [t["sequenceId"] for t in turns] == [1, 1_740_760_662_466]


def test_second_request_while_one_is_in_flight_answers_423(wire: Wire, emu: RunningEmulator) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "latency_ms": 400, "times": 1}]})
    results: dict[str, int] = {}

    def slow() -> None:
        results["slow"] = wire.send(session_id, 1, "first").status_code

    thread = threading.Thread(target=slow)
    thread.start()
    _wait_in_flight(wire, session_id)
    other = Wire(emu)
    other.token = wire.token
    assert_api_error(other.send(session_id, 2, "second"), 423, "Locked")
    assert_api_error(other.end(session_id), 423)
    thread.join()
    assert results["slow"] == 200
    assert other.send(session_id, 2, "second").status_code == 200  # the lock is released afterwards
    counters = wire.admin("GET", "/counters")
    assert counters["locked"] == 2
    assert counters["requests"]["send_message 423"] == 1
    assert [t["text"] for t in counters["turns"]] == ["first", "second"]
    other.close()


def _wait_in_flight(wire: Wire, session_id: str) -> None:
    for _ in range(200):
        if wire.admin("GET", f"/sessions/{session_id}")["inFlight"]:
            return
        threading.Event().wait(0.005)
    raise AssertionError("the first request never got in flight")


def test_idle_sessions_expire_and_answer_404() -> None:
    with run_emulator(idle_timeout=60) as emu:
        wire = Wire(emu)
        session_id = wire.session()
        wire.admin("POST", "/clock/advance", {"seconds": 50})
        assert wire.send(session_id, 1).status_code == 200  # activity resets the idle timer
        wire.admin("POST", "/clock/advance", {"seconds": 50})
        assert wire.send(session_id, 2).status_code == 200
        wire.admin("POST", "/clock/advance", {"seconds": 61})
        assert_api_error(wire.send(session_id, 3), 404, session_id)
        [session] = wire.admin("GET", "/sessions")["sessions"]
        assert session["state"] == "expired"
        assert wire.admin("GET", "/counters")["sessions"] == {"open": 0, "started": 1, "ended": 0, "expired": 1}
        wire.close()


def test_end_session_answers_session_ended_then_404(wire: Wire) -> None:
    session_id = wire.session()
    response = wire.end(session_id)
    assert response.status_code == 200
    [message] = response.json()["messages"]
    assert message["type"] == "SessionEnded"
    assert message["reason"] == "ClientRequest"
    assert message["id"]
    assert message["feedbackId"]
    assert "_links" in response.json()
    assert_api_error(wire.end(session_id), 404)
    assert_api_error(wire.send(session_id, 1), 404)
    assert_api_error(wire.stream(session_id, 1)[0], 404)
    [session] = wire.admin("GET", "/sessions")["sessions"]
    assert (session["state"], session["endReason"]) == ("ended", "UserRequest")


@pytest.mark.sessionforce_emulator(strict=False)
def test_end_reason_header_unknown_is_400_and_missing_means_user_request(wire: Wire, emu: RunningEmulator) -> None:
    session_id = wire.session()
    assert_api_error(wire.end(session_id, "Bored"), 400, "x-session-end-reason")
    emu.set_strict(True)  # strict: a missing header is a deviation from the documented request
    assert_api_error(wire.end(session_id, None), 400, "Strict mode", "x-session-end-reason")
    emu.set_strict(False)
    assert wire.end(session_id, None).status_code == 200
    assert wire.admin("GET", f"/sessions/{session_id}")["endReason"] == "UserRequest"
    for reason in ("Transfer", "Expiration", "Error", "Other"):
        other = wire.session()
        assert wire.end(other, reason).status_code == 200


def test_feedback_on_a_reply(wire: Wire) -> None:
    session_id = wire.session()
    reply = wire.send(session_id, 1, "what are your opening hours?").json()["messages"][0]
    response = wire.feedback(session_id, {"feedbackId": reply["feedbackId"], "feedback": "GOOD", "text": "thanks"})
    assert response.status_code == 201
    assert wire.admin("GET", f"/sessions/{session_id}")["feedback"] == [
        {"feedbackId": reply["feedbackId"], "feedback": "GOOD", "text": "thanks"}]
    assert_api_error(wire.feedback(session_id, {"feedbackId": "not-issued", "feedback": "BAD"}), 400, "'feedbackId'")
    bad_value = {"feedbackId": reply["feedbackId"], "feedback": "MEH"}
    assert_api_error(wire.feedback(session_id, bad_value), 400, "'feedback'")
    assert_api_error(wire.feedback(session_id, {"feedback": "BAD"}), 400, "'feedbackId'")


def test_every_reply_gets_a_fresh_feedback_id(wire: Wire) -> None:
    session_id = wire.session()
    ids = [wire.send(session_id, n, f"turn {n}").json()["messages"][0]["feedbackId"] for n in (1, 2, 3)]
    assert len(set(ids)) == 3
    assert all(ids)


def test_unknown_routes_answer_json_errors(wire: Wire) -> None:
    assert_api_error(wire.http.get(f"{API}/nothing-here"), 404)
    response = wire.http.get(f"{API}/sessions/abc/messages")
    assert_api_error(response, 405)


def test_unknown_headers_are_accepted(wire: Wire) -> None:
    session_id = wire.session()
    response = wire.http.post(f"{API}/sessions/{session_id}/messages", headers={
        **wire.auth, "x-client-name": "tests", "x-attributed-client": "no-builder"},
        json={"message": {"sequenceId": 1, "type": "Text", "text": "hi"}})
    assert response.status_code == 200
    assert isinstance(httpx.Response, type)
