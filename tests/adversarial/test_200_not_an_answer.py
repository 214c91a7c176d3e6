"""Finding 7: a 200 that is not an answer must not count as one.

``200 {"status": 500, "error": ...}`` or ``200 {}`` on send (and their streamed twins) is recorded as an
answered turn with no messages; start-session already raises ``ProtocolError`` for this, send and stream
must too. Around it, more hostile answers the wire layer must map to our own errors, truthfully and
without resending a request that may have been delivered: truncated JSON, a wrong content type, a body
cut short, broken chunked encoding, a reset after the request was read.
"""

from __future__ import annotations

import pytest

from sessionforce.errors import DeliveryUnknown, ProtocolError, SessionforceError
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, our_error, outcome_within, stream_outcome
from tests.adversarial._hostile import (
    Behaviour,
    HostileServer,
    bad_chunked,
    end_of_turn_event,
    json_200,
    reset_after_body,
    respond,
    short_body,
    sse,
    truncated_json,
    wrong_content_type,
)

_SERVER_ERROR_IN_A_200 = {"status": 500, "path": "v6.0.0/sessions/x/messages", "requestId": "r-1",
                          "error": "HttpServerErrorException", "message": "Internal Server Error",
                          "timestamp": 1740760662466, "expected": False}

_NOT_ANSWERS: dict[str, tuple[str, Behaviour]] = {
    "send-200-status-500": ("send", json_200(_SERVER_ERROR_IN_A_200)),
    "send-200-empty-object": ("send", json_200({})),
    "stream-200-json-status-500": ("stream", json_200(_SERVER_ERROR_IN_A_200)),
    "stream-200-json-empty-object": ("stream", json_200({})),
    "stream-end-of-turn-without-a-message": ("stream", sse(end_of_turn_event())),
}


async def _outcome(server: HostileServer, route: str) -> BaseException:
    async with _harness.client(server.url, retry=_harness.no_retries(),
                               timeouts=_harness.timeouts(read=5, stream_read=5)) as owner:
        session = await owner.start_session()
        if route == "send":
            outcome = await outcome_within(owner.send_message(session.session_id, "hi", sequence_id=1), 15, route)
        else:
            outcome = await stream_outcome(lambda: owner.stream_message(session.session_id, "hi", sequence_id=1),
                                           15, route)
    return failure_of(outcome, f"a {route} answered with something that is not an answer")


@pytest.mark.parametrize("case", list(_NOT_ANSWERS))
async def test_a_200_that_is_not_an_answer_is_a_protocol_error(hostile: HostileServer, case: str) -> None:
    route, behaviour = _NOT_ANSWERS[case]
    hostile.script(route, behaviour)
    our_error(await _outcome(hostile, route), ProtocolError)
    assert hostile.count(route) == 1


async def test_a_conversation_does_not_record_a_200_without_messages_as_an_answered_turn(
    hostile: HostileServer,
) -> None:
    hostile.script("send", json_200({}))
    async with _harness.client(hostile.url, retry=_harness.no_retries()) as owner:
        conv = _harness.conversation(owner, "empty-200")
        outcome = await outcome_within(conv.send("hello"), 15, "a turn answered 200 {}")
        record = await conv.record()
        entries = [e for e in await conv.transcript() if e.text == "hello"]
    error = failure_of(outcome, "a turn answered 200 {}")
    our_error(error, ProtocolError)
    assert record is not None
    assert record.turns == 0, "the turn was counted as answered"
    assert [e.kind for e in entries] != ["turn"], "the transcript records an answered turn with no reply"
    assert len(entries) == 1


# ------------------------------------------------------------------ more hostile answers (hold today: guards)

_GARBLED: dict[str, tuple[Behaviour, type[SessionforceError]]] = {
    "truncated-json": (truncated_json(), ProtocolError),
    "html-instead-of-json": (wrong_content_type(), ProtocolError),
    "json-array-instead-of-object": (respond(200, b"[1, 2, 3]"), ProtocolError),
    "body-cut-short": (short_body(), DeliveryUnknown),
    "broken-chunked-encoding": (bad_chunked(), DeliveryUnknown),
    "reset-after-the-request-was-read": (reset_after_body(), DeliveryUnknown),
}


@pytest.mark.parametrize("case", list(_GARBLED))
async def test_a_garbled_answer_to_a_send_is_our_error_and_is_never_resent(hostile: HostileServer, case: str) -> None:
    behaviour, expected = _GARBLED[case]
    hostile.script("send", behaviour)
    our_error(await _outcome(hostile, "send"), expected)
    assert hostile.count("send") == 1, "a turn that may have been delivered was sent again"


@pytest.mark.parametrize("case", ["body-cut-short", "reset-after-the-request-was-read", "html-instead-of-sse"])
async def test_a_garbled_answer_to_a_stream_is_our_error_and_is_never_resent(hostile: HostileServer, case: str) -> None:
    behaviour = {"body-cut-short": short_body(), "reset-after-the-request-was-read": reset_after_body(),
                 "html-instead-of-sse": wrong_content_type()}[case]
    hostile.script("stream", behaviour)
    error = await _outcome(hostile, "stream")
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    assert hostile.count("stream") == 1, "a turn that may have been delivered was sent again"
