"""Finding 1: a cancelled turn must not leave its session open.

Our own cancelled request keeps the server session locked (423) until the agent finishes; ending the
session must wait that out (bounded), and a session that still could not be ended must stay findable by
the reaper, never forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pexpect
import pytest

from sessionforce.emulator import CallableAgent, RunningEmulator, TurnContext, run_emulator
from sessionforce.errors import SessionforceError
from tests.adversarial import _harness
from tests.adversarial._assertions import outcome_within
from tests.adversarial._cli import COMMAND, CliRun

SLOW_MS = 5000
"""The agent's think time: long enough to cancel a turn in the middle of it."""


def _echo(ctx: TurnContext) -> str:
    return f"You said: {ctx.text}"


def _sessions(emu: RunningEmulator) -> list[dict[str, object]]:
    return httpx.get(f"{emu.url}/__emulator/sessions", timeout=5).json()["sessions"]  # type: ignore[no-any-return]


@pytest.fixture
def slow_emu() -> Iterator[RunningEmulator]:
    """An emulator whose only agent takes SLOW_MS to answer each turn."""
    with run_emulator(agents=[CallableAgent(_echo, name="Slow", latency_ms=SLOW_MS)]) as emu:
        yield emu


async def test_end_after_a_cancelled_turn_ends_the_server_session(slow_emu: RunningEmulator) -> None:
    async with _harness.emulator_client(slow_emu) as owner:
        conv = _harness.conversation(owner, "cancelled-then-ended")
        await conv.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conv.send("hello"), 1.0)  # the app gives up on the turn
        ended = await outcome_within(conv.end(), 15, "end() after a cancelled turn")
    assert ended.error is None, f"end() failed: {type(ended.error).__name__}: {ended.error}"
    assert ended.value is True
    assert [s["state"] for s in _sessions(slow_emu)] == ["ended"], "the server session was left open"


async def test_a_session_that_could_not_be_ended_stays_findable_by_the_reaper(slow_emu: RunningEmulator) -> None:
    """Whatever bound end() puts on waiting for the server's lock: either the session is ended, or the
    record still shows it live so the reaper ends it later. Never forgotten."""
    store = _harness.memory_store()
    async with _harness.emulator_client(slow_emu, store=store) as owner:
        conv = _harness.conversation(owner, "could-not-end", lock_wait=1.0)
        await conv.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conv.send("hello"), 1.0)
        ended = await outcome_within(conv.end(), 15, "end() after a cancelled turn")
        if ended.error is not None:
            assert isinstance(ended.error, SessionforceError), repr(ended.error)
            live = await store.list_conversations()
            record = next((r for r in live if r.conversation_id == "could-not-end"), None)
            assert record is not None, f"end() failed ({ended.error}) and the conversation is no longer listed"
            assert record.session_id is not None, (
                f"end() failed ({ended.error}) and the record no longer names the live session: the reaper "
                "cannot find it"
            )
            deadline = time.monotonic() + 10
            while any(s["inFlight"] for s in _sessions(slow_emu)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # the server finishes our cancelled turn
            reaped = await _harness.reap_idle(owner, idle_for=0)
            assert reaped == ["could-not-end"]
    assert [s["state"] for s in _sessions(slow_emu)] == ["ended"], "the server session was left open"


def test_chat_ctrl_c_during_a_reply_then_quit_ends_the_session(cli: CliRun, slow_emu: RunningEmulator) -> None:
    cli.org(slow_emu.url, client_id=slow_emu.client_id, secret=slow_emu.client_secret,
            agent_id=slow_emu.default_agent_id)
    child = pexpect.spawn(COMMAND[0], [*COMMAND[1:], "chat", "--no-stream"], env=cli.env, encoding="utf-8",
                          timeout=15, dimensions=(40, 100))
    try:
        child.expect("you ›")
        child.sendline("hello")
        time.sleep(1.0)
        child.sendintr()  # Ctrl-C while the agent is still thinking
        child.expect("turn cancelled")
        child.expect("you ›")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
        output = child.before or ""
    finally:
        child.close(force=True)
    assert "could not end the session" not in output, output
    assert child.exitstatus == 0, output
    assert [s["state"] for s in _sessions(slow_emu)] == ["ended"], "the chat left its server session open"
