"""The streaming endpoint: SSE framing, event order, chunks, locking — over real HTTP."""

from __future__ import annotations

import threading

import httpx
from emulator_wire import API, Wire, assert_api_error, parse_sse

from sessionforce.emulator import RunningEmulator


def test_stream_sends_progress_chunks_final_message_then_end_of_turn(wire: Wire) -> None:
    session_id = wire.session(chunks=True)
    response, events = wire.stream(session_id, 1, "what are your opening hours?")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "ProgressIndicator"
    assert kinds[-2:] == ["Inform", "EndOfTurn"]
    assert set(kinds[1:-2]) == {"TextChunk"}
    assert len(kinds) > 4
    progress = events[0]["data"]["message"]
    assert (progress["indicatorType"], progress["message"]) == ("ACTION", "Working on it")
    final = events[-2]["data"]["message"]
    chunks = [e["data"] for e in events if e["event"] == "TextChunk"]
    assert "".join(c["message"]["message"] for c in chunks) == final["message"]
    offsets = [c["message"]["offset"] for c in chunks]
    assert offsets == sorted(offsets)
    assert offsets[0] == 0
    assert all(c["offset"] == c["message"]["offset"] for c in chunks)
    assert all(isinstance(e["data"]["timestamp"], int) for e in events)
    assert final["feedbackId"]
    assert "Tuesday" in final["message"]


def test_no_text_chunks_unless_the_session_asked_for_them(wire: Wire) -> None:
    session_id = wire.session(chunks=False)
    _, events = wire.stream(session_id, 1, "purple elephants")
    assert [e["event"] for e in events] == ["ProgressIndicator", "Inform", "EndOfTurn"]
    assert events[1]["data"]["message"]["message"] == "You said: purple elephants"


def test_stream_with_several_final_messages_sends_each(wire: Wire) -> None:
    session_id = wire.session(chunks=False)
    _, events = wire.stream(session_id, 1, "goodbye")
    assert [e["event"] for e in events] == ["ProgressIndicator", "Inform", "SessionEnded", "EndOfTurn"]
    assert_api_error(wire.send(session_id, 2), 404)


def test_validation_errors_before_the_stream_are_plain_json(wire: Wire) -> None:
    session_id = wire.session()
    response = wire.http.post(f"{API}/sessions/{session_id}/messages/stream", headers=wire.auth,
                              json={"message": {"sequenceId": 1, "type": "Nope", "text": "x"}})
    assert response.headers["content-type"].startswith("application/json")
    assert_api_error(response, 400, "'message.type'")


def test_stream_holds_the_session_lock_until_it_ends(wire: Wire, emu: RunningEmulator) -> None:
    session_id = wire.session()
    wire.admin("PUT", "/faults", {"rules": [{"route": "stream_message", "latency_ms": 400}]})
    done = threading.Event()
    with httpx.Client(base_url=emu.url) as other:
        body = {"message": {"sequenceId": 1, "type": "Text", "text": "slow"}}
        with other.stream("POST", f"{API}/sessions/{session_id}/messages/stream", json=body,
                          headers={**wire.auth, "Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines) == "event: ProgressIndicator"  # the stream has started, the turn runs
            assert_api_error(wire.send(session_id, 2), 423)
            rest = list(lines)
            done.set()
        assert "event: EndOfTurn" in rest
    assert wire.send(session_id, 2).status_code == 200
    assert done.is_set()


def test_streamed_and_sync_turns_share_one_sequence(wire: Wire) -> None:
    session_id = wire.session()
    assert wire.stream(session_id, 1)[0].status_code == 200
    assert_api_error(wire.send(session_id, 1), 400, "(1)")
    assert wire.send(session_id, 2).status_code == 200
    turns = wire.admin("GET", "/counters")["turns"]
    assert [(t["sequenceId"], t["route"]) for t in turns] == [(1, "stream_message"), (2, "send_message")]


def test_parse_sse_helper_rejects_events_without_both_lines() -> None:
    try:
        parse_sse('data: {"message": {"type": "X"}}\n\n')
    except AssertionError:
        return
    raise AssertionError("expected the helper to insist on event: and data: lines")
