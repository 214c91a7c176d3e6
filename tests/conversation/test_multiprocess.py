"""One conversation shared by real processes through the SQLite store: turns never overlap on the wire,
and a process killed mid-turn leaves a record the next process reports as delivery-unknown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.store import open_store
from tests.support import Admin, client_kwargs

ROOT = Path(__file__).resolve().parents[2]


def spawn(emu: RunningEmulator, store: str, prefix: str, turns: int, lease_ttl: float = 30.0) -> subprocess.Popen[str]:
    args = [emu.url, emu.client_id, emu.client_secret, emu.default_agent_id, store, "shared", prefix, str(turns),
            str(lease_ttl)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.conversation.worker", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_four_processes_fifty_senders_zero_423(emu: RunningEmulator, admin: Admin, tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'shared.db'}"
    workers = [spawn(emu, store, f"p{n}", turns) for n, turns in enumerate([13, 13, 12, 12])]
    outputs = [w.communicate(timeout=60) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    sequences = [int(line.split()[0]) for out, _ in outputs for line in out.splitlines()]
    assert sorted(sequences) == list(range(1, 51))  # unique across processes, none reused
    counters = admin.counters()
    assert counters["locked"] == 0
    turns = admin.turns()
    sent = Counter(f"p{n} {i}" for n, count in enumerate([13, 13, 12, 12]) for i in range(count))
    assert Counter(t["text"] for t in turns) == sent  # every turn delivered exactly once
    assert [t["sequenceId"] for t in turns] == list(range(1, 51))  # strictly increasing on the wire
    assert len({t["sessionId"] for t in turns}) == 1


@pytest.fixture(params=["sqlite", "redis"])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes can share: a SQLite file, or a Redis under a fresh prefix."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'crash.db'}"
    return f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"


@pytest.mark.timeout(60)
async def test_a_process_killed_mid_turn_is_taken_over_and_reported(
    emu: RunningEmulator, admin: Admin, shared_store_url: str
) -> None:
    # The doomed turn stays in flight on the server for a while after its sender dies.
    admin.faults({"route": "send_message", "latency_ms": 2500, "times": 1})
    victim = spawn(emu, shared_store_url, "doomed", 1, lease_ttl=1.0)
    store = open_store(shared_store_url)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = await store.load("shared")
            if record is not None and record.pending is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the worker never started its turn: {victim.stderr.read() if victim.stderr else ''}")
        await asyncio.sleep(0.2)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)

        # Another worker takes the conversation over once the dead one's lease runs out.
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conv = Conversations(client, store=store).get("shared")
            reply = await conv.send("after the crash")
            assert reply.interrupted_turn is not None
            assert reply.interrupted_turn.sequence_id == 1
            assert reply.interrupted_turn.text == "doomed 0"
            assert reply.sequence_id == 2  # the interrupted turn's id is never reused
            kinds = [e.kind for e in await conv.transcript()]
            assert kinds.count("delivery_unknown") == 1
            record = await conv.record()
            assert record is not None
            assert record.pending is None
            await conv.end()
        # The server was still running the dead worker's turn: the survivor waited out the 423s.
        assert admin.requests("send_message", 423) >= 1
    finally:
        await store.aclose()
        if victim.poll() is None:
            victim.kill()
    assert Counter(t["text"] for t in admin.turns()) == Counter({"doomed 0": 1, "after the crash": 1})
    assert {s["state"] for s in admin.sessions()} == {"ended"}
