"""Real processes sharing one store (SQLite: the same file; Redis: the same prefix).

Four processes run fifty turns each on one conversation: the counter must come out exact, with no
refused write and no two critical sections overlapping. And a process killed while holding the lease
must not block the conversation past its TTL, nor be able to write with its dead lease's fence.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from sessionforce.errors import LeaseLost
from sessionforce.store import ConversationRecord, Lease, Store, TranscriptEntry

CID = "shared/conversation"
WORKERS = 4
ITERATIONS = 50
KILL_TTL = 0.5
SPAWN = multiprocessing.get_context("spawn")  # no inherited event loop, connections or locks


def _open(kind: str, where: str, prefix: str) -> Store:
    if kind == "sqlite":
        from sessionforce.store import SQLiteStore

        return SQLiteStore(where)
    from sessionforce.store import RedisStore

    return RedisStore.from_url(where, prefix=prefix)


@pytest.fixture(params=["sqlite", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(kind, file or URL, key prefix) of a store that several processes can open."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "shared.db"), ""
    return "redis", request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


# -- worker processes (module-level so spawn can import them) -----------------------------------------


def _turns_worker(kind: str, where: str, prefix: str, worker: int, start: Barrier, results: Any) -> None:
    try:
        asyncio.run(_turns(_open(kind, where, prefix), worker, start))
        results.put((worker, None))
    except BaseException as exc:
        results.put((worker, f"{type(exc).__name__}: {exc}"))


async def _turns(store: Store, worker: int, start: Barrier) -> None:
    await store.load(CID)  # open the connection before the race starts
    start.wait(30)
    try:
        for i in range(ITERATIONS):
            lease = await store.acquire(CID, owner=f"worker-{worker}", ttl=10.0, wait=30.0)
            began = time.time()
            record = await store.load(CID)
            assert record is not None
            counter = record.metadata["counter"] + 1
            await store.save(record.replace(metadata={"counter": counter}), fence=lease.fence)
            ended = time.time()
            detail = {"worker": worker, "i": i, "start": began, "end": ended, "counter": counter}
            await store.append_transcript(CID, TranscriptEntry(kind="turn", at=ended, detail=detail), fence=lease.fence)
            await store.release(lease)
    finally:
        await store.aclose()


def _doomed_holder(kind: str, where: str, prefix: str, out: Connection) -> None:
    async def hold() -> None:
        store = _open(kind, where, prefix)
        lease = await store.acquire(CID, owner="doomed", ttl=KILL_TTL, wait=5.0)
        out.send(lease)
        await asyncio.sleep(60)  # killed long before this ends

    asyncio.run(hold())


# -- tests --------------------------------------------------------------------------------------------


async def test_four_processes_take_turns_without_losing_an_update(location: tuple[str, str, str]) -> None:
    kind, where, prefix = location
    store = _open(kind, where, prefix)
    record = ConversationRecord(
        conversation_id=CID,
        agent_id="a",
        external_session_key="k",
        created_at=1.0,
        last_activity_at=1.0,
        metadata={"counter": 0},
    )
    await store.save(record)
    start = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_turns_worker, args=(kind, where, prefix, w, start, results)) for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    outcomes = dict(await asyncio.to_thread(lambda: [results.get(timeout=45) for _ in processes]))
    for p in processes:
        p.join(10)
    assert outcomes == dict.fromkeys(range(WORKERS)), outcomes  # no StaleRecord, LeaseLost or Busy anywhere

    final = await store.load(CID)
    assert final is not None
    assert final.metadata["counter"] == WORKERS * ITERATIONS
    assert final.version == WORKERS * ITERATIONS + 1
    entries = await store.transcript(CID)
    assert len(entries) == WORKERS * ITERATIONS
    assert [e.detail["counter"] for e in entries] == list(range(1, WORKERS * ITERATIONS + 1))
    spans = sorted((e.detail["start"], e.detail["end"]) for e in entries)
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlaps == [], f"{len(overlaps)} critical sections overlapped, e.g. {overlaps[:3]}"
    assert {e.detail["worker"] for e in entries} == set(range(WORKERS))
    await store.aclose()


async def test_a_killed_holder_loses_its_lease_after_the_ttl_and_its_fence_stays_dead(
    location: tuple[str, str, str],
) -> None:
    kind, where, prefix = location
    receive, send = SPAWN.Pipe(duplex=False)
    holder = SPAWN.Process(target=_doomed_holder, args=(kind, where, prefix, send))
    holder.start()
    try:
        assert await asyncio.to_thread(receive.poll, 30), "the holder process never took the lease"
        dead: Lease = receive.recv()
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    assert holder.exitcode == -signal.SIGKILL

    store = _open(kind, where, prefix)
    lease = await store.acquire(CID, owner="survivor", ttl=5.0, wait=5.0)
    taken_at = time.time()
    assert taken_at >= dead.expires_at - 0.01  # not before the dead holder's TTL ran out
    assert taken_at < dead.expires_at + 2.0  # but soon after it
    assert lease.fence > dead.fence

    saved = await store.save(
        ConversationRecord(
            conversation_id=CID, agent_id="a", external_session_key="k", created_at=1.0, last_activity_at=1.0
        ),
        fence=lease.fence,
    )
    await store.append_transcript(CID, TranscriptEntry(kind="turn", at=1.0), fence=lease.fence)
    with pytest.raises(LeaseLost):
        await store.save(saved, fence=dead.fence)
    with pytest.raises(LeaseLost):
        await store.append_transcript(CID, TranscriptEntry(kind="error", at=2.0), fence=dead.fence)
    with pytest.raises(LeaseLost):
        await store.renew(dead, ttl=5.0)
    await store.release(dead)  # a no-op: must not free the survivor's lease
    assert (await store.save(saved, fence=lease.fence)).version == 2
    assert [e.kind for e in await store.transcript(CID)] == ["turn"]
    await store.release(lease)
    await store.aclose()
