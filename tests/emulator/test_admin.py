"""The admin surface: agents, sessions, transcripts, counters, clock, reset."""

from __future__ import annotations

import httpx
from emulator_wire import Wire, assert_api_error

from sessionforce.emulator import DEMO_AGENT_ID, RunningEmulator


def test_agents_lists_the_demo_agent(wire: Wire) -> None:
    [agent] = wire.admin("GET", "/agents")["agents"]
    assert agent["id"] == DEMO_AGENT_ID
    assert agent["name"]


def test_sessions_show_their_state(wire: Wire) -> None:
    active, ended, expired = wire.session(), wire.session(), wire.session()
    wire.end(ended)
    wire.admin("POST", f"/sessions/{expired}/expire")
    states = {s["sessionId"]: s["state"] for s in wire.admin("GET", "/sessions")["sessions"]}
    assert states == {active: "active", ended: "ended", expired: "expired"}
    assert_api_error(wire.send(expired, 1), 404)
    assert wire.admin("GET", "/counters")["sessions"] == {"open": 1, "started": 3, "ended": 1, "expired": 1}


def test_session_detail_has_the_transcript(wire: Wire) -> None:
    session_id = wire.session()
    wire.send(session_id, 1, "my name is Grace")
    detail = wire.admin("GET", f"/sessions/{session_id}")
    assert detail["lastSequenceId"] == 1
    assert detail["turns"] == 1
    assert [entry["direction"] for entry in detail["transcript"]] == ["agent", "user", "agent"]
    assert detail["transcript"][1]["message"]["text"] == "my name is Grace"
    assert detail["memory"] == {"name": "Grace"}
    assert wire.http.get("/__emulator/sessions/nope").status_code == 404


def test_counters_count_requests_by_route_and_status(wire: Wire) -> None:
    wire.fetch_token()
    session_id = wire.session()
    wire.send(session_id, 1, "one")
    wire.send(session_id, 1, "dup")
    wire.stream(session_id, 2, "two")
    wire.end(session_id)
    counters = wire.admin("GET", "/counters")
    assert counters["requests"] == {"token 200": 1, "start_session 200": 1, "send_message 200": 1,
                                    "send_message 400": 1, "stream_message 200": 1, "end_session 200": 1}
    assert counters["turns"] == [
        {"sessionId": session_id, "sequenceId": 1, "type": "Text", "text": "one", "route": "send_message"},
        {"sessionId": session_id, "sequenceId": 2, "type": "Text", "text": "two", "route": "stream_message"},
    ]


def test_reset_forgets_everything(wire: Wire, emu: RunningEmulator) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "feedback", "status": 500}]})
    assert wire.admin("POST", "/reset") == {"reset": True}
    assert wire.admin("GET", "/sessions") == {"sessions": []}
    assert wire.admin("GET", "/faults")["rules"] == []
    assert wire.admin("GET", "/counters")["requests"] == {}
    assert_api_error(wire.send(session_id, 1), 401)  # tokens are gone too
    wire.fetch_token()
    assert_api_error(wire.send(session_id, 1), 404)


def test_clock_advance_validates_its_body(emu: RunningEmulator) -> None:
    for body in ({}, {"seconds": -1}, {"seconds": "5"}):
        assert httpx.post(f"{emu.url}/__emulator/clock/advance", json=body).status_code == 400
    assert httpx.post(f"{emu.url}/__emulator/clock/advance", content=b"{").status_code == 400


def test_python_helpers_poke_the_state(emu: RunningEmulator) -> None:
    wire = Wire(emu)
    session_id = wire.session()
    emu.advance_clock(901)
    assert_api_error(wire.send(session_id, 1), 404)
    emu.set_faults({"rules": [{"route": "start_session", "status": 503}]})
    assert_api_error(wire.start(), 503)
    assert emu.counters()["requests"]["start_session 503"] == 1
    emu.reset()
    assert emu.counters()["requests"] == {}
    wire.close()
