"""Conversations shared by real worker processes through the PostgreSQL store, proved from the emulator's
own counters: zero 423s, sequenceIds strictly increasing per session, every turn delivered exactly once;
a SIGKILLed worker is taken over and its turn reported; a database restarted in the middle of a turn
loses nothing. (The same for SQLite and Redis: test_multiprocess.py, test_many_workers.py.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionforce import AsyncAgentClient, Conversations
from sessionforce.emulator import RunningEmulator
from sessionforce.store import ConversationStatus, open_store
from tests.postgres_server import Cluster, PostgresUnavailable, skip_or_fail, throwaway_cluster
from tests.support import Admin, client_kwargs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_url(postgres_url: str, postgres_schema: str) -> str:
    return f"{postgres_url}?schema={postgres_schema}&pool_max=3"


def spawn(emu: RunningEmulator, module: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", module, emu.url, emu.client_id, emu.client_secret, emu.default_agent_id, *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(90)
def test_four_processes_fifty_senders_on_one_conversation(emu: RunningEmulator, admin: Admin, store_url: str) -> None:
    counts = [13, 13, 12, 12]
    workers = [spawn(emu, "tests.conversation.worker", store_url, "shared", f"p{n}", str(turns))
               for n, turns in enumerate(counts)]
    outputs = [w.communicate(timeout=80) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    sequences = [int(line.split()[0]) for out, _ in outputs for line in out.splitlines()]
    assert sorted(sequences) == list(range(1, 51))
    assert admin.counters()["locked"] == 0
    turns = admin.turns()
    assert Counter(t["text"] for t in turns) == Counter(f"p{n} {i}" for n, c in enumerate(counts) for i in range(c))
    assert [t["sequenceId"] for t in turns] == list(range(1, 51))
    assert len({t["sessionId"] for t in turns}) == 1


@pytest.mark.timeout(150)
async def test_four_workers_share_fifty_conversations(emu: RunningEmulator, admin: Admin, store_url: str) -> None:
    workers = [spawn(emu, "tests.conversation.random_worker", store_url, f"w{n}", "50", "40", str(n))
               for n in range(4)]
    outputs = await asyncio.to_thread(lambda: [w.communicate(timeout=130) for w in workers])
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    answered = [line.split(maxsplit=2) for out, _ in outputs for line in out.splitlines()]
    assert len(answered) == 160
    counters = admin.counters()
    assert counters["locked"] == 0
    turns = admin.turns()
    assert Counter(t["text"] for t in turns) == Counter(f"w{n} turn {i}" for n in range(4) for i in range(40))
    by_session: dict[str, list[int]] = {}
    for t in turns:
        by_session.setdefault(t["sessionId"], []).append(t["sequenceId"])
    for seqs in by_session.values():
        assert seqs == sorted(set(seqs))
    assert max(Counter((conv, seq) for conv, seq, _ in answered).values()) == 1
    store = open_store(store_url)
    try:
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            for record in await store.list_conversations(status=ConversationStatus.ACTIVE):
                assert await Conversations(client, store=store).get(record.conversation_id).end()
    finally:
        await store.aclose()
    assert {s["state"] for s in admin.sessions()} == {"ended"}


@pytest.mark.timeout(60)
async def test_a_process_killed_mid_turn_is_taken_over_and_reported(
    emu: RunningEmulator, admin: Admin, store_url: str
) -> None:
    admin.faults({"route": "send_message", "latency_ms": 2500, "times": 1})
    victim = spawn(emu, "tests.conversation.worker", store_url, "shared", "doomed", "1", "1.0")
    store = open_store(store_url)
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
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conv = Conversations(client, store=store).get("shared")
            reply = await conv.send("after the crash")
            assert reply.interrupted_turn is not None
            assert (reply.interrupted_turn.sequence_id, reply.interrupted_turn.text) == (1, "doomed 0")
            assert reply.sequence_id == 2
            assert [e.kind for e in await conv.transcript()].count("delivery_unknown") == 1
            await conv.end()
        assert admin.requests("send_message", 423) >= 1  # the survivor waited out the dead worker's turn
    finally:
        await store.aclose()
        if victim.poll() is None:
            victim.kill()
    assert Counter(t["text"] for t in admin.turns()) == Counter({"doomed 0": 1, "after the crash": 1})
    assert {s["state"] for s in admin.sessions()} == {"ended"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        with throwaway_cluster() as running:
            yield running
    except PostgresUnavailable as exc:
        skip_or_fail(f"cannot start a cluster of our own: {exc}")


@pytest.mark.timeout(90)
async def test_a_database_restarted_mid_turn_loses_nothing(emu: RunningEmulator, admin: Admin,
                                                          cluster: Cluster) -> None:
    store = open_store(f"{cluster.url}?schema=turns_{uuid.uuid4().hex[:8]}&pool_max=2")
    admin.faults({"route": "send_message", "latency_ms": 1500, "times": 1})
    try:
        async with AsyncAgentClient(**client_kwargs(emu)) as client:
            conv = Conversations(client, store=store).get("c1")
            first = await conv.send("before")
            turn = asyncio.create_task(conv.send("during the restart"))
            while len(admin.turns()) < 2:  # the turn reached the agent; its answer is 1.5 s away
                await asyncio.sleep(0.02)
            await asyncio.to_thread(cluster.restart)
            reply = await turn  # its last save lands on a fresh connection: nothing failed
            after = await conv.send("after")
            assert (first.sequence_id, reply.sequence_id, after.sequence_id) == (1, 2, 3)
            assert [e.text for e in await conv.transcript() if e.kind == "turn"] == ["before", "during the restart",
                                                                                    "after"]
            await conv.end()
    finally:
        await store.aclose()
    assert [t["text"] for t in admin.turns()] == ["before", "during the restart", "after"]
    assert admin.counters()["locked"] == 0
