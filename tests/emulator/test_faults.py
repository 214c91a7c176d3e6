"""Fault injection over real HTTP: statuses, latency, dropped streams, resets, expiries."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from emulator_wire import API, Wire, assert_api_error

from sessionforce.emulator import FaultConfigError, RunningEmulator, run_emulator

# A cut connection shows up as a protocol error (closed mid-response) or, when the kernel answers
# unread bytes with RST, as a read error: both mean "no complete response", which is the point.
CUT = (httpx.RemoteProtocolError, httpx.ReadError)


def test_status_every_nth_request_without_processing_the_turn(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "status": 503, "every": 2}]})
    statuses = [wire.send(session_id, n, f"t{n}").status_code for n in range(1, 7)]
    assert statuses == [200, 503, 200, 503, 200, 503]
    turns = wire.admin("GET", "/counters")["turns"]
    assert [t["sequenceId"] for t in turns] == [1, 3, 5]  # the 503s never reached the agent


def test_status_fault_has_salesforce_error_shape_and_retry_after(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "status": 429, "retry_after": 2, "times": 1}]})
    response = wire.send(session_id, 1)
    assert_api_error(response, 429)
    assert response.headers["retry-after"] == "2"
    assert wire.send(session_id, 1).status_code == 200  # times: 1, and the same sequenceId is still free
    faults = wire.admin("GET", "/faults")
    assert faults["rules"][0]["fired"] == 1
    assert faults["rules"][0]["matched"] == 2


def test_probability_is_deterministic_with_a_seed(emu: RunningEmulator) -> None:
    def run() -> list[int]:
        emu.reset()
        wire = Wire(emu)
        session_id = wire.session()
        wire.admin("PUT", "/faults", {"seed": 7, "rules": [{"route": "send_message", "status": 500,
                                                             "probability": 0.5}]})
        statuses = [wire.send(session_id, n).status_code for n in range(1, 21)]
        wire.close()
        return statuses

    first, second = run(), run()
    assert first == second
    assert 500 in first
    assert 200 in first


def test_route_any_and_token_route(wire: Wire) -> None:
    wire.admin("PUT", "/faults", {"rules": [{"route": "any", "status": 502, "times": 1}]})
    response = wire.fetch_token()
    assert response.status_code == 502
    assert response.json()["error"] == "server_error"
    assert wire.fetch_token().status_code == 200


def test_latency_is_added_and_the_turn_is_processed(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "latency_ms": 200}]})
    started = time.perf_counter()
    assert wire.send(session_id, 1).status_code == 200
    assert time.perf_counter() - started >= 0.19
    assert len(wire.admin("GET", "/counters")["turns"]) == 1


def test_stream_dropped_after_n_chunks(wire: Wire, emu: RunningEmulator) -> None:
    session_id = wire.session(chunks=True)
    wire.admin("PUT", "/faults", {"rules": [{"route": "stream_message", "drop_after_chunks": 2, "times": 1}]})
    body = {"message": {"sequenceId": 1, "type": "Text", "text": "what are your opening hours"}}
    seen: list[str] = []

    def read_stream() -> None:
        with wire.http.stream("POST", f"{API}/sessions/{session_id}/messages/stream", json=body,
                              headers={**wire.auth, "Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            seen.extend(line for line in response.iter_lines() if line.startswith("event:"))

    with pytest.raises(CUT):
        read_stream()
    assert seen == ["event: ProgressIndicator", "event: TextChunk", "event: TextChunk"]
    # The turn was accepted (delivered), the session is unlocked and still usable.
    assert [t["sequenceId"] for t in wire.admin("GET", "/counters")["turns"]] == [1]
    assert wire.send(session_id, 2).status_code == 200


@pytest.mark.parametrize(("when", "recorded"), [("before", []), ("after", [1])])
def test_connection_reset_gives_no_complete_response(wire: Wire, when: str, recorded: list[int]) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "reset": when, "times": 1}]})
    with pytest.raises(CUT):
        wire.send(session_id, 1, "maybe delivered")
    counters = wire.admin("GET", "/counters")
    assert [t["sequenceId"] for t in counters["turns"]] == recorded
    assert counters["requests"]["send_message reset"] == 1
    # After "after", sequenceId 1 was used: the client must not resend it blindly.
    expected = 400 if recorded else 200
    assert wire.send(session_id, 1).status_code == expected


def test_reset_after_on_the_stream_route(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "stream_message", "reset": "after", "times": 1}]})
    with pytest.raises(CUT):
        wire.stream(session_id, 1)
    assert wire.send(session_id, 2).status_code == 200  # the lock was released


def test_expire_session_fault_answers_404(wire: Wire) -> None:
    session_id = wire.session()
    assert wire.send(session_id, 1).status_code == 200
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "expire_session": True, "times": 1}]})
    assert_api_error(wire.send(session_id, 2), 404)
    assert wire.admin("GET", f"/sessions/{session_id}")["state"] == "expired"


def test_expire_token_fault_answers_401(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "any", "expire_token": True, "times": 1}]})
    assert_api_error(wire.send(session_id, 1), 401)
    wire.fetch_token()
    assert wire.send(session_id, 1).status_code == 200


def test_delete_faults_clears_them(wire: Wire) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "send_message", "status": 500}]})
    assert wire.send(session_id, 1).status_code == 500
    assert wire.admin("DELETE", "/faults")["rules"] == []
    assert wire.send(session_id, 1).status_code == 200


def test_faults_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("seed: 1\nrules:\n  - route: start_session\n    status: 503\n    times: 1\n")
    with run_emulator(faults=path) as emu:
        wire = Wire(emu)
        assert_api_error(wire.start(), 503)
        assert wire.start().status_code == 200
        wire.close()


@pytest.mark.parametrize(("document", "fragment"), [
    ({"rules": [{"route": "send_mesage", "status": 500}]}, "rules[0].route"),
    ({"rules": [{"route": "send_message"}]}, "add one of"),
    ({"rules": [{"route": "send_message", "status": 200}]}, "rules[0].status"),
    ({"rules": [{"route": "send_message", "status": 500, "every": 0}]}, "rules[0].every"),
    ({"rules": [{"route": "send_message", "status": 500, "every": 2, "probability": 0.5}]}, "not both"),
    ({"rules": [{"route": "send_message", "reset": "during"}]}, "rules[0].reset"),
    ({"rules": [{"route": "send_message", "status": 500, "colour": "red"}]}, "colour"),
    ({"seed": "x"}, "seed"),
])
def test_bad_fault_documents_are_rejected_with_a_clear_message(wire: Wire, document: object, fragment: str) -> None:
    response = wire.http.put("/__emulator/faults", json=document)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_bad_fault_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("rules:\n  - route: nowhere\n    status: 500\n")
    with pytest.raises(FaultConfigError, match=r"faults\.yaml: rules\[0\]\.route"), run_emulator(faults=path):
        pass
