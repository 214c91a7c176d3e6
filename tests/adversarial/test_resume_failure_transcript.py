"""Finding 6: a turn must not vanish from the transcript when a resume fails.

docs/lifecycle.md promises exactly one truthful entry per turn the app sent. A 404 (the session expired)
followed by a failed start (503, or 401 from a token the server refuses) leaves no entry; with
``resume="replay"``, a preamble cut by a connection reset is reported as ``DeliveryUnknown`` for a user
turn that was never sent, again with no entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionforce.emulator import RunningEmulator, run_emulator
from sessionforce.errors import DeliveryUnknown, SessionforceError
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, outcome_within
from tests.support import Admin

TURN = "second turn, after the session expired"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with run_emulator() as running:
        yield running


async def _expire_then_send(emu: RunningEmulator, fault: dict[str, Any], **options: Any) -> tuple[Any, list[Any]]:
    """One good turn; the session expires; ``fault`` is set; the next turn is sent. -> (outcome, transcript)."""
    admin = Admin(emu.url)
    try:
        async with _harness.emulator_client(emu, retry=_harness.no_retries()) as owner:
            conv = _harness.conversation(owner, "resumed", **options)
            first = await conv.send("first turn")
            assert first.session_id is not None
            admin.expire(first.session_id)
            admin.faults(fault)
            outcome = await outcome_within(conv.send(TURN), 20, "a turn whose resume fails")
            admin.faults()
            return outcome, await conv.transcript()
    finally:
        admin.http.close()


def _entries_for(transcript: list[Any], text: str) -> list[Any]:
    return [entry for entry in transcript if entry.text == text]


@pytest.mark.parametrize("status", [503, 401])
async def test_a_failed_restart_after_404_still_records_the_turn(emu: RunningEmulator, status: int) -> None:
    outcome, transcript = await _expire_then_send(emu, {"route": "start_session", "status": status})
    error = failure_of(outcome, f"a turn whose new session answered {status}")
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    entries = _entries_for(transcript, TURN)
    assert len(entries) == 1, f"expected exactly one entry for the turn, found {[e.to_dict() for e in entries]}"
    assert entries[0].kind == "error", f"the turn was never accepted; its entry says {entries[0].kind!r}"


async def test_a_cut_replay_preamble_does_not_report_the_unsent_turn_as_maybe_delivered(
    emu: RunningEmulator,
) -> None:
    # Counted from when the rule is set: the turn's 404 is the 1st send_message, the preamble the 2nd.
    fault = {"route": "send_message", "reset": "after", "every": 2, "times": 1}
    outcome, transcript = await _expire_then_send(emu, fault, resume="replay")
    error = failure_of(outcome, "a turn whose replay preamble was cut")
    turns = [t["text"] for t in emu.counters()["turns"]]
    assert TURN not in turns, f"the fault must cut the preamble, not the turn: accepted {turns}"
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    assert not isinstance(error, DeliveryUnknown), f"the user's turn was never sent, yet: {error!r}"
    entries = _entries_for(transcript, TURN)
    assert len(entries) == 1, f"expected exactly one entry for the turn, found {[e.to_dict() for e in entries]}"
    assert entries[0].kind == "error", f"the turn was never sent; its entry says {entries[0].kind!r}"
