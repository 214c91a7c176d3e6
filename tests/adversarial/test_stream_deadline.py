"""Finding 5: a stream must not hang forever.

A server that sends a ``: keep-alive`` comment, or one byte, every 0.5 s and never completes an event
keeps a streamed turn alive for ever (``stream_read=2`` notwithstanding; here: 1 s, a trickle every 0.3 s),
with the lease renewed, so the whole conversation is blocked. ``stream_read`` must bound the gap between
*complete events*, and every turn needs an overall deadline (``Timeouts(turn=...)``): the
real Agent API itself answers 500 past 120 s.

The turn was accepted (the 200 came), so the truthful error is delivery-unknown (``StreamInterrupted``).
"""

from __future__ import annotations

import json
import uuid

import pytest

from sessionforce.errors import DeliveryUnknown
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, our_error, outcome_within, stream_outcome
from tests.adversarial._hostile import HostileServer, hang, trickle

STREAM_READ = 1.0
BOUND = 3.5
"""What "ends within bounded time" means here: stream_read plus slack for a loaded machine."""

_PROGRESS = ("data: " + json.dumps({"timestamp": 1, "message": {
    "type": "ProgressIndicator", "id": uuid.uuid4().hex, "indicatorType": "ACTION", "message": "Working on it"}})
    + "\n\n").encode()

_TRICKLES = {
    "keep-alive-comment": trickle(b": keep-alive\n\n", interval=0.3),
    "one-byte-at-a-time": trickle(b"d", interval=0.3),
    "half-an-event-then-bytes": trickle(b"a", interval=0.3, first=b'data: {"message": {"type": "TextChu'),
}


@pytest.mark.parametrize("how", list(_TRICKLES))
async def test_a_stream_that_never_completes_an_event_ends_within_stream_read(
    hostile: HostileServer, how: str
) -> None:
    hostile.script("stream", _TRICKLES[how])
    async with _harness.client(hostile.url, retry=_harness.no_retries(),
                               timeouts=_harness.timeouts(stream_read=STREAM_READ)) as owner:
        session = await owner.start_session()
        outcome = await stream_outcome(lambda: owner.stream_message(session.session_id, "hi", sequence_id=1),
                                       BOUND, f"a stream trickling {how} with stream_read={STREAM_READ}")
    our_error(failure_of(outcome, "a stream that never completed an event"), DeliveryUnknown)
    assert outcome.seconds >= STREAM_READ * 0.9, f"gave up after {outcome.seconds:.1f}s, before stream_read"


async def test_a_hung_stream_does_not_block_the_conversation(hostile: HostileServer) -> None:
    hostile.script("stream", trickle(b": keep-alive\n\n", interval=0.3))
    async with _harness.client(hostile.url, retry=_harness.no_retries(),
                               timeouts=_harness.timeouts(stream_read=STREAM_READ)) as owner:
        conv = _harness.conversation(owner, "trickled", lease_ttl=3, lock_wait=BOUND)
        outcome = await stream_outcome(lambda: conv.stream("hello"), BOUND, "a streamed turn on a trickling stream")
        hostile.clear()
        after = await outcome_within(conv.end(), BOUND, "end() after the hung stream")
        entries = await conv.transcript()
    our_error(failure_of(outcome, "a streamed turn that never completed an event"), DeliveryUnknown)
    assert after.error is None, f"the conversation stayed blocked: end() raised {after.error!r}"
    turn = [e for e in entries if e.text == "hello"]
    assert [e.kind for e in turn] == ["delivery_unknown"], [e.to_dict() for e in turn]


async def test_every_turn_has_an_overall_deadline(hostile: HostileServer) -> None:
    hostile.script("stream", trickle(_PROGRESS, interval=0.3))
    turn_deadline = 2.0
    try:
        limits = _harness.timeouts(stream_read=STREAM_READ, turn=turn_deadline)
    except TypeError as exc:
        raise AssertionError(f"no overall turn deadline can be set: Timeouts(turn=...) -> {exc}") from exc
    async with _harness.client(hostile.url, retry=_harness.no_retries(), timeouts=limits) as owner:
        session = await owner.start_session()
        outcome = await stream_outcome(lambda: owner.stream_message(session.session_id, "hi", sequence_id=1),
                                       turn_deadline + BOUND, "a stream of progress events that never ends")
    our_error(failure_of(outcome, "a stream of progress events that never ends"), DeliveryUnknown)
    assert outcome.seconds <= turn_deadline + 2, f"the turn deadline was not kept ({outcome.seconds:.1f}s)"


@pytest.mark.parametrize("answer", ["never", "trickled-body"])
async def test_a_send_that_never_completes_ends_within_read(hostile: HostileServer, answer: str) -> None:
    """The non-streamed side already holds (``read`` bounds the whole request): kept here as a guard."""
    hostile.script("send", hang() if answer == "never" else trickle(b" ", interval=0.3,
                                                                       content_type="application/json"))
    async with _harness.client(hostile.url, retry=_harness.no_retries(), timeouts=_harness.timeouts(read=1.5)) as owner:
        session = await owner.start_session()
        outcome = await outcome_within(owner.send_message(session.session_id, "hi", sequence_id=1), BOUND,
                                       "a send whose answer never completes")
    our_error(failure_of(outcome, "a send whose answer never completes"), DeliveryUnknown)
    assert hostile.count("send") == 1, "a send that may have been delivered was resent"
