"""The emulator survives hostile input (issue 11, finding 10): deep JSON, huge bodies, absurd clock steps,
bad settings, and a long life (ended sessions and tokens do not pile up)."""

from __future__ import annotations

import json

import httpx
import pytest
from emulator_wire import API, Wire, assert_api_error

from sessionforce.emulator import EmulatorConfigError, RunningEmulator, run_emulator

DEEP = b"[" * 100_000 + b"]" * 100_000  # past the interpreter's recursion limit: the old RecursionError


def _deep_object(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("body", [DEEP, _deep_object(65), b'{"message": {"sequenceId": NaN, "type": "Text"}}',
                                  b'{"x": Infinity}', b"[1, 2"])
def test_bad_json_bodies_answer_400_on_every_json_route(wire: Wire, body: bytes) -> None:
    session_id = wire.session()
    headers = {**wire.auth, "Content-Type": "application/json"}
    for path in (f"{API}/agents/{wire.emulator.default_agent_id}/sessions", f"{API}/sessions/{session_id}/messages",
                 f"{API}/sessions/{session_id}/messages/stream", f"{API}/sessions/{session_id}/feedback"):
        body_error = assert_api_error(wire.http.post(path, content=body, headers=headers), 400, "Invalid request body")
        assert "Recursion" not in body_error["message"]
    assert wire.send(session_id, 1).status_code == 200  # nothing was accepted, the session is fine


def test_nesting_up_to_the_limit_is_fine(wire: Wire) -> None:
    session_id = wire.session()
    nested: object = 1
    for _ in range(60):
        nested = {"a": nested}
    body = {"message": {"sequenceId": 1, "type": "Text", "text": "hi"},
            "variables": [{"name": "deep", "type": "Object", "value": nested}]}
    response = wire.http.post(f"{API}/sessions/{session_id}/messages", json=body, headers=wire.auth)
    assert response.status_code == 200, response.text


def test_deep_json_to_the_admin_surface_answers_400(emu: RunningEmulator) -> None:
    for path in ("/__emulator/faults", "/__emulator/strict"):
        response = httpx.put(f"{emu.url}{path}", content=DEEP)
        assert response.status_code == 400, response.text
        assert "nested deeper" in response.json()["message"]


def test_huge_bodies_answer_413_without_being_read_whole() -> None:
    with run_emulator(max_body_bytes=1000) as emu:
        wire = Wire(emu)
        session_id = wire.session()
        big = json.dumps({"message": {"sequenceId": 1, "type": "Text", "text": "x" * 5000}})
        response = wire.http.post(f"{API}/sessions/{session_id}/messages", content=big,
                                  headers={**wire.auth, "Content-Type": "application/json"})
        assert_api_error(response, 413, "limit is 1000 bytes")

        def chunks() -> object:  # no Content-Length: the cap applies while reading
            for _ in range(10):
                yield b" " * 500

        response = wire.http.post(f"{API}/sessions/{session_id}/messages", content=chunks(),  # type: ignore[arg-type]
                                  headers={**wire.auth, "Content-Type": "application/json"})
        assert_api_error(response, 413)
        token = httpx.post(f"{emu.url}/services/oauth2/token", content=b"grant_type=client_credentials&" + b"x" * 2000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert token.status_code == 413
        assert wire.send(session_id, 1).status_code == 200
        wire.close()


@pytest.mark.parametrize("raw", [b'{"seconds": ' + b"9" * 400 + b"}", b'{"seconds": Infinity}', b'{"seconds": NaN}',
                                 b'{"seconds": -1}', b'{"seconds": 1e308}', b'{"seconds": "5"}', b'{"seconds": true}',
                                 b"{}", b"[1]"])
def test_clock_advance_rejects_bad_steps_and_leaves_the_clock_alone(wire: Wire, emu: RunningEmulator,
                                                                   raw: bytes) -> None:
    session_id = wire.session()
    response = wire.http.post("/__emulator/clock/advance", content=raw)
    assert response.status_code == 400, response.text
    assert "seconds" in response.json()["message"]
    assert len(response.json()["message"]) < 200  # a 400-digit number is not echoed whole
    assert emu.call(lambda s: s.clock.offset) == 0.0
    assert wire.fetch_token().status_code == 200  # the token route (which formats a timestamp) still works
    assert wire.send(session_id, 1).status_code == 200
    with pytest.raises(ValueError, match="seconds"):
        emu.advance_clock(float("inf"))


def test_the_clock_total_is_bounded(emu: RunningEmulator) -> None:
    assert httpx.post(f"{emu.url}/__emulator/clock/advance", json={"seconds": 3e9}).status_code == 200
    response = httpx.post(f"{emu.url}/__emulator/clock/advance", json={"seconds": 3e9})
    assert response.status_code == 400
    assert "at most" in response.json()["message"]
    assert httpx.post(f"{emu.url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret,
    }).status_code == 200


@pytest.mark.parametrize(("settings", "field"), [
    ({"port": 99999}, "port"), ({"port": -1}, "port"), ({"idle_timeout": -1}, "idle_timeout"),
    ({"idle_timeout": float("nan")}, "idle_timeout"), ({"token_ttl": float("inf")}, "token_ttl"),
    ({"request_timeout": 0}, "request_timeout"), ({"max_sessions": 0}, "max_sessions"),
    ({"token_format": "paper"}, "token_format"), ({"client_secret": ""}, "client_secret"),
])
def test_bad_settings_are_refused_naming_the_setting(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field) as caught, run_emulator(**settings):  # type: ignore[arg-type]
        pass
    if field != "port":
        assert isinstance(caught.value, EmulatorConfigError)
        assert caught.value.field == field


def test_ended_and_expired_sessions_are_evicted_but_still_404() -> None:
    with run_emulator(max_closed_sessions=5, idle_timeout=60) as emu:
        wire = Wire(emu)
        ended = [wire.session() for _ in range(8)]
        for session_id in ended:
            assert wire.end(session_id).status_code == 200
        expired = wire.session()
        emu.advance_clock(61)
        listed = {s["sessionId"]: s["state"] for s in wire.admin("GET", "/sessions")["sessions"]}
        assert listed == {**dict.fromkeys(ended[4:], "ended"), expired: "expired"}
        assert emu.call(lambda s: (len(s.sessions), len(s.closed))) == (5, 5)  # the bound holds
        for session_id in [*ended, expired]:  # kept or forgotten: a late call gets the same 404
            assert_api_error(wire.send(session_id, 1), 404, "V6Session not found")
            assert_api_error(wire.end(session_id), 404)
        assert wire.admin("GET", "/counters")["sessions"] == {"open": 0, "started": 9, "ended": 8, "expired": 1}
        wire.close()


def test_closed_sessions_are_forgotten_after_their_ttl() -> None:
    with run_emulator(closed_session_ttl=100) as emu:
        wire = Wire(emu)
        session_id = wire.session()
        wire.end(session_id)
        assert wire.admin("GET", f"/sessions/{session_id}")["state"] == "ended"
        emu.advance_clock(101)
        assert wire.http.get(f"/__emulator/sessions/{session_id}").status_code == 404
        assert_api_error(wire.send(session_id, 1), 404)
        wire.close()


def test_expired_tokens_are_dropped_when_new_ones_are_issued() -> None:
    with run_emulator(token_ttl=10) as emu:
        wire = Wire(emu)
        for _ in range(5):
            wire.fetch_token()
        emu.advance_clock(11)
        wire.fetch_token()
        assert emu.call(lambda s: len(s.tokens)) == 1
        wire.close()
