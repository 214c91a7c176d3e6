"""Real processes sharing one PostgreSQL schema (store protocol v2; tests/store/test_multiprocess.py does
the same for SQLite and Redis).

Four processes run fifty turns each on one conversation: the counter comes out exact, no write is
refused, no two critical sections overlap, and every wait ends by a notification or a poll. A process
SIGKILLed while holding the lease blocks the conversation no longer than its TTL, and its lease stays
dead: owner and fence are checked together on every write.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import pytest

from sessionforce.errors import LeaseLost
from sessionforce.store import ConversationRecord, Lease, TranscriptEntry
from sessionforce.store._postgres import PostgresStore

CID = "shared/conversation"
WORKERS = 4
ITERATIONS = 50
KILL_TTL = 0.8
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def url(postgres_url: str, postgres_schema: str) -> str:
    return f"{postgres_url}?schema={postgres_schema}&pool_max=2"


def _turns_worker(url: str, worker: int, start: Any, results: Any) -> None:
    try:
        asyncio.run(_turns(PostgresStore.from_url(url), worker, start))
        results.put((worker, None))
    except BaseException as exc:
        results.put((worker, f"{type(exc).__name__}: {exc}"))


async def _turns(store: PostgresStore, worker: int, start: Any) -> None:
    await store.load(CID)  # connect before the race starts
    start.wait(30)
    try:
        for i in range(ITERATIONS):
            lease = await store.acquire(CID, owner=f"worker-{worker}", ttl=10.0, wait=30.0)
            began = time.time()
            record = await store.load(CID)
            assert record is not None
            counter = record.metadata["counter"] + 1
            saved = await store.save(record.replace(metadata={"counter": counter}), lease=lease)
            ended = time.time()
            detail = {"worker": worker, "i": i, "start": began, "end": ended, "counter": counter}
            entry = TranscriptEntry(kind="turn", at=ended, detail=detail)
            if i % 2:  # both ways of ending a turn: a separate release, and the release in the last save
                await store.append_transcript(CID, entry, lease=lease)
                await store.release(lease)
            else:
                await store.save(saved, lease=lease, transcript=[entry], release=True)
    finally:
        await store.aclose()


def _doomed_holder(url: str, out: Connection) -> None:
    async def hold() -> None:
        store = PostgresStore.from_url(url)
        lease = await store.acquire(CID, owner="doomed", ttl=KILL_TTL, wait=5.0)
        out.send(lease)
        await asyncio.sleep(60)  # killed long before this ends

    asyncio.run(hold())


@pytest.mark.timeout(90)
async def test_four_processes_take_turns_without_losing_an_update(url: str) -> None:
    store = PostgresStore.from_url(url)
    await store.save(ConversationRecord(conversation_id=CID, agent_id="a", external_session_key="k",
                                        created_at=1.0, last_activity_at=1.0, metadata={"counter": 0}))
    start = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_turns_worker, args=(url, w, start, results)) for w in range(WORKERS)]
    for p in processes:
        p.start()
    outcomes = dict(await asyncio.to_thread(lambda: [results.get(timeout=75) for _ in processes]))
    for p in processes:
        p.join(10)
    assert outcomes == dict.fromkeys(range(WORKERS)), outcomes  # no StaleRecord, LeaseLost or Busy anywhere

    final = await store.load(CID)
    assert final is not None
    assert final.metadata["counter"] == WORKERS * ITERATIONS
    assert final.version == WORKERS * ITERATIONS + WORKERS * ITERATIONS // 2 + 1  # every other turn saves twice
    entries = await store.transcript(CID)
    assert [e.detail["counter"] for e in entries] == list(range(1, WORKERS * ITERATIONS + 1))
    spans = sorted((e.detail["start"], e.detail["end"]) for e in entries)
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlaps == [], f"{len(overlaps)} critical sections overlapped, e.g. {overlaps[:3]}"
    assert {e.detail["worker"] for e in entries} == set(range(WORKERS))
    await store.aclose()


@pytest.mark.timeout(60)
async def test_a_killed_holder_loses_its_lease_after_the_ttl_and_stays_dead(url: str) -> None:
    receive, send = SPAWN.Pipe(duplex=False)
    holder = SPAWN.Process(target=_doomed_holder, args=(url, send))
    holder.start()
    try:
        assert await asyncio.to_thread(receive.poll, 30), "the holder process never took the lease"
        dead: Lease = receive.recv()
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    assert holder.exitcode == -signal.SIGKILL

    store = PostgresStore.from_url(url)
    started = time.monotonic()
    lease = await store.acquire(CID, owner="survivor", ttl=5.0, wait=5.0)
    waited = time.monotonic() - started
    assert waited < KILL_TTL + 1.0  # no longer than the dead holder's TTL (the server's clock decides)
    assert lease.fence > dead.fence

    saved = await store.save(ConversationRecord(conversation_id=CID, agent_id="a", external_session_key="k",
                                                created_at=1.0, last_activity_at=1.0), lease=lease)
    await store.append_transcript(CID, TranscriptEntry(kind="turn", at=1.0), lease=lease)
    with pytest.raises(LeaseLost):
        await store.save(saved, lease=dead)
    with pytest.raises(LeaseLost):
        await store.append_transcript(CID, TranscriptEntry(kind="error", at=2.0), lease=dead)
    with pytest.raises(LeaseLost):
        await store.renew(dead, ttl=5.0)
    await store.release(dead)  # a no-op: must not free the survivor's lease
    assert (await store.save(saved, lease=lease, release=True)).version == 2
    assert [e.kind for e in await store.transcript(CID)] == ["turn"]
    await store.aclose()
