"""Finding 2: the store's failure must not replace the truth about delivery.

A turn reaches the agent; then the store fails (Redis killed, SQLite disk full, SQLite locked) while the
outcome is being recorded. The app must still be told the truth: *maybe delivered* when no answer came
(a ``DeliveryUnknown``), *answered* when it did (the reply), and never "nothing was sent", which
docs/deployment.md tells apps to retry: a duplicate delivery waiting to happen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionforce.emulator import run_emulator
from sessionforce.errors import DeliveryUnknown, SessionforceError, StoreUnavailable
from tests.adversarial import _harness
from tests.adversarial._assertions import failure_of, our_error, outcome_within
from tests.adversarial._disk import read_only_directory
from tests.adversarial._store_faults import KINDS, breaking_agent, store_fault

TEXT = "break: please cancel my appointment"


def _accepted(counters: dict[str, object]) -> list[str]:
    return [turn["text"] for turn in counters["turns"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
async def test_no_answer_then_store_failure_is_reported_as_maybe_delivered(kind: str, tmp_path: Path) -> None:
    with store_fault(kind, tmp_path) as fault, run_emulator(agents=[breaking_agent(fault, latency_ms=1800)]) as emu:
        store = fault.store()
        try:
            async with _harness.emulator_client(emu, store=store, timeouts=_harness.timeouts(read=0.6)) as owner:
                conv = _harness.conversation(owner, f"no-answer-{kind}")
                outcome = await outcome_within(conv.send(TEXT), 20, "a turn whose answer never came")
        finally:
            await store.aclose()
        accepted = _accepted(emu.counters())
    error = failure_of(outcome, "a turn whose answer never came")
    assert accepted == [TEXT], "the fault must strike after the agent accepted the turn"
    our_error(error, DeliveryUnknown)
    assert "nothing was sent" not in str(error).lower(), f"the turn was sent, the error says otherwise: {error}"


@pytest.mark.parametrize("kind", KINDS)
async def test_answered_then_store_failure_hands_over_the_reply_and_says_it_was_answered(
    kind: str, tmp_path: Path
) -> None:
    with store_fault(kind, tmp_path) as fault, run_emulator(agents=[breaking_agent(fault, latency_ms=200)]) as emu:
        store = fault.store()
        try:
            async with _harness.emulator_client(emu, store=store) as owner:
                conv = _harness.conversation(owner, f"answered-{kind}")
                outcome = await outcome_within(conv.send(TEXT), 20, "an answered turn")
        finally:
            await store.aclose()
        accepted = _accepted(emu.counters())
    error = failure_of(outcome, "an answered turn whose store failed")
    assert accepted == [TEXT]
    assert isinstance(error, SessionforceError), f"not our error: {type(error).__name__}: {error}"
    reply = getattr(error, "reply", None)
    assert reply is not None, "the agent's answer was not handed over"
    assert reply.text == f"You said: {TEXT}"
    assert "nothing was sent" not in str(error).lower(), f"the turn was answered, the error says otherwise: {error}"


async def test_a_store_that_fails_before_the_turn_sends_nothing_and_says_so(tmp_path: Path) -> None:
    """The other side of the same promise: when the store fails first, nothing goes out, and the error
    says exactly that (a read-only directory: the database cannot even be created)."""
    with read_only_directory(tmp_path) as directory, run_emulator() as emu:
        store = _harness.sqlite_store(directory / "sessions.db")
        try:
            async with _harness.emulator_client(emu, store=store) as owner:
                outcome = await outcome_within(_harness.conversation(owner, "read-only").send("hello"), 20,
                                               "a turn on a read-only store")
        finally:
            await store.aclose()
        counters = emu.counters()
    error = our_error(failure_of(outcome, "a turn on a read-only store"), StoreUnavailable)
    assert "nothing was sent" in str(error).lower()
    assert _accepted(counters) == []
    assert not any(key.startswith("start_session") for key in counters["requests"]), counters["requests"]
