"""Finding 9: a process must not lock itself out for a whole ``lease_ttl`` after a store hiccup.

Redis frozen (SIGSTOP) while a turn takes its lease: the call times out, Redis resumes (SIGCONT) and runs
the queued command, so the lease is ours but we do not know it; ``end()`` then waits for "a turn by this
same process". SQLite full or locked while a turn ends: the final save and the release fail, the lease
stays, and the next turn waits it out. After the hiccup the next call must go through promptly, well
under ``lease_ttl`` (it is 30 s here; ``lock_wait`` is 3.5 s, so today's lockout shows as ConversationBusy).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from sessionforce.emulator import run_emulator
from tests.adversarial import _harness
from tests.adversarial._assertions import outcome_within
from tests.adversarial._redis_proc import RedisProcess
from tests.adversarial._store_faults import breaking_agent, store_fault

LEASE_TTL = 30.0
LOCK_WAIT = 3.5
PROMPT = 2.5
"""What "promptly" means: under a tenth of lease_ttl, and under lock_wait."""


async def test_a_frozen_redis_during_acquire_does_not_lock_the_process_out(redis_proc: RedisProcess) -> None:
    store = _harness.redis_store(redis_proc.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    try:
        with run_emulator() as emu:
            async with _harness.emulator_client(emu, store=store) as owner:
                conv = _harness.conversation(owner, "frozen", lease_ttl=LEASE_TTL, lock_wait=LOCK_WAIT)
                await conv.send("hello")  # warm: the store's scripts are loaded, the session is live
                redis_proc.freeze()
                thaw = threading.Timer(1.0, redis_proc.thaw)
                thaw.start()
                hiccup = await outcome_within(conv.send("during the hiccup"), 20, "a turn while Redis is frozen")
                thaw.join()
                await asyncio.sleep(0.3)  # Redis has resumed and run what was queued
                after = await outcome_within(conv.end(), 20, "end() after the hiccup")
            sessions = emu.counters()["sessions"]
    finally:
        await store.aclose()
    assert hiccup.error is not None or hiccup.value is not None  # either is fine: it is the next call that matters
    assert after.error is None, f"end() after the hiccup failed: {type(after.error).__name__}: {after.error}"
    assert after.seconds < PROMPT, f"end() took {after.seconds:.1f}s after the hiccup"
    assert sessions.get("open", 0) == 0, f"the session was left open: {sessions}"


@pytest.mark.parametrize("kind", ["sqlite-full", "sqlite-locked"])
async def test_a_store_hiccup_while_a_turn_ends_does_not_lock_the_next_turn_out(kind: str, tmp_path: Path) -> None:
    with store_fault(kind, tmp_path) as fault, run_emulator(agents=[breaking_agent(fault, latency_ms=100)]) as emu:
        store = fault.store()
        try:
            async with _harness.emulator_client(emu, store=store) as owner:
                conv = _harness.conversation(owner, f"hiccup-{kind}", lease_ttl=LEASE_TTL, lock_wait=LOCK_WAIT)
                hiccup = await outcome_within(conv.send("break: the store fails as this turn ends"), 20,
                                              "a turn whose store fails as it ends")
                fault.mend()
                after = await outcome_within(conv.send("the next turn"), 20, "the turn after the hiccup")
        finally:
            await store.aclose()
    assert hiccup.error is not None, "the fault did not strike"
    assert after.error is None, f"the next turn failed: {type(after.error).__name__}: {after.error}"
    assert after.seconds < PROMPT, f"the next turn took {after.seconds:.1f}s after the hiccup"
    assert after.value.text == "You said: the next turn"
