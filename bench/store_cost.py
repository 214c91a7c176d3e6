"""What a turn costs in each shared store, and how long a queued turn waits for the lease.

``python -m bench.store_cost [--smoke] [--turns N] [--conversations C] [--handovers H]``

1. **Per turn**: the store calls a turn makes (take the lease, load the record, the write-ahead save, the
   last save with the transcript entry that gives the lease up), on SQLite, Redis and PostgreSQL in the
   same run: one turn at a time, then ``C`` conversations in flight at once (1,000 by default). Printed
   per turn: this process's CPU (``time.process_time``), the server's CPU (Redis: its process, from
   /proc; PostgreSQL: the backends of our own connections; SQLite has no server: all of it is ours),
   and wall time; in flight also turns per second.
2. **Queued-turn wait**: a turn holds a conversation for 20-80 ms while another process's store (a
   second store object) waits for it; timed from the start of the holder's releasing save to the
   waiter holding the lease. PostgreSQL with ``LISTEN/NOTIFY`` against PostgreSQL polling (``notify=False``),
   Redis (pub/sub, polling as the fallback) and SQLite (polling between store objects: 2 ms growing to
   50 ms, the shared loop's). PostgreSQL runs twice:
   as configured, and with ``synchronous_commit=off`` (set per connection through the URL's ``options``).

Redis runs as a ``redis-server`` of our own on a free port (its CPU is then only ours), through a bounded
blocking pool of 50 connections (PostgreSQL: its pool of 10); PostgreSQL is
``--postgres-url`` (default ``POSTGRES_URL`` or 127.0.0.1:5432/test) in a schema of our own, dropped at
the end. A store that cannot be had here is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import header, median, percentile
from sessionforce.store import ConversationRecord, Lease, PendingTurn, SessionInfo, TranscriptEntry

REPLY = [{"type": "Inform", "id": "m1", "feedbackId": "f1", "isContentSafe": True, "result": [],
          "citedReferences": [], "message": "Your order #1234 shipped yesterday and arrives on Friday."}]


# -- one turn's store calls ---------------------------------------------------------------------------


async def _save(store: Any, record: ConversationRecord, lease: Lease, transcript: Sequence[TranscriptEntry] = (),
                release: bool = False) -> ConversationRecord:
    saved: ConversationRecord = await store.save(record, lease=lease, transcript=transcript, release=release)
    return saved


def new_record(cid: str) -> ConversationRecord:
    now = time.time()
    session = SessionInfo(session_id=str(uuid.uuid4()), external_session_key=str(uuid.uuid4()), started_at=now)
    return ConversationRecord(conversation_id=cid, agent_id="0XxSF0000000DEMOAA", external_session_key="k",
                              session_id=session.session_id, sessions=[session], created_at=now,
                              last_activity_at=now)


async def turn(store: Any, cid: str, owner: str, *, hold: float = 0.0) -> None:
    """The store calls of one turn (the agent's answer takes ``hold`` seconds)."""
    lease = await store.acquire(cid, owner=owner, ttl=30.0, wait=30.0)
    record = await store.load(cid)
    if record is None:
        record = await _save(store, new_record(cid), lease)
    seq = record.last_sequence_id + 1
    pending = PendingTurn(sequence_id=seq, session_id=record.session_id or "", text="Where is my order #1234?",
                          started_at=time.time(), owner=owner)
    ahead = await _save(store, record.replace(last_sequence_id=seq, pending=pending), lease)
    if hold:
        await asyncio.sleep(hold)
    entry = TranscriptEntry(kind="turn", at=time.time(), session_id=record.session_id, sequence_id=seq,
                            text=pending.text, message_type="Text", reply=REPLY, duration_ms=412.0)
    await _save(store, ahead.replace(pending=None, turns=ahead.turns + 1, last_activity_at=time.time()), lease,
                [entry], release=True)


# -- the stores -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _proc_cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far (from /proc; gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Kind:
    """A store kind under test: how to open one, and the server processes its CPU is read from."""

    name: str
    open: Callable[..., Any]
    server_pids: Callable[[], Sequence[int]]


@contextlib.contextmanager
def _redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="sf-bench-redis-") as workdir:
        port = _free_port()
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(200):
                with contextlib.suppress(redis.ConnectionError):
                    client.ping()
                    break
                time.sleep(0.02)
            client.close()
            yield f"redis://127.0.0.1:{port}/0|{process.pid}"
        finally:
            process.terminate()
            process.wait(5)


@contextlib.contextmanager
def kinds(tmp: Path, postgres_url: str) -> Iterator[list[Kind]]:
    """The stores this machine has: SQLite always; Redis and PostgreSQL when they can be had."""
    found = [Kind("sqlite", lambda **_: _sqlite(tmp / "bench.db"), list)]
    with contextlib.ExitStack() as stack:
        try:
            where, pid = stack.enter_context(_redis_server()).split("|")
            from redis.asyncio import BlockingConnectionPool, Redis

            from sessionforce.store import RedisStore

            # A bounded pool that makes callers wait: redis-py's default pool opens a connection per
            # concurrent call and fails past its limit (seen here at 1,000 turns in flight).
            def open_redis(**_: Any) -> Any:
                pool = BlockingConnectionPool.from_url(where, max_connections=50, timeout=30)
                return RedisStore(Redis(connection_pool=pool), prefix="bench:")

            found.append(Kind("redis", open_redis, lambda: [int(pid)]))
        except Exception as exc:
            print(f"note: Redis skipped ({type(exc).__name__}: {exc})")
        try:
            found += stack.enter_context(_postgres(postgres_url))
        except Exception as exc:
            print(f"note: PostgreSQL skipped ({type(exc).__name__}: {exc})")
        yield found


def _sqlite(path: Path) -> Any:
    from sessionforce.store import SQLiteStore

    return SQLiteStore(path)


@contextlib.contextmanager
def _postgres(url: str) -> Iterator[list[Kind]]:
    import psycopg

    from sessionforce.store import PostgresStore

    schema = f"sfbench_{uuid.uuid4().hex[:12]}"
    app = f"sfbench-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, connect_timeout=3, autocommit=True):
        pass

    def pids() -> list[int]:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchall()
        return [pid for (pid,) in rows]

    def opener(options: str) -> Callable[..., Any]:
        def open_store(**kwargs: Any) -> Any:
            return PostgresStore.from_url(f"{url}?schema={schema}&application_name={app}{options}", **kwargs)

        return open_store

    try:
        # As configured (synchronous_commit=on: every commit waits for its WAL to reach the disk), and with
        # commits acknowledged before that (a server crash may lose the last ~0.6 s of them; nothing else).
        yield [Kind("postgres", opener(""), pids),
               Kind("postgres-async", opener("&options=-c%20synchronous_commit%3Doff"), pids)]
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


# -- the measurements -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def opened(kind: Kind, **kwargs: Any) -> AsyncIterator[Any]:
    store = kind.open(**kwargs)
    try:
        yield store
    finally:
        await store.aclose()


async def per_turn(kind: Kind, turns: int, conversations: int) -> dict[str, float]:
    """CPU (ours, the server's) and wall seconds per turn; ``conversations`` turns run at once."""
    pool = {"pool_min": 10, "pool_max": 10} if kind.name == "postgres" else {}
    async with opened(kind, **pool) as store:
        prefix = f"{kind.name}-{conversations}-{uuid.uuid4().hex[:6]}"
        ids = [f"{prefix}-{n}" for n in range(conversations)]
        await asyncio.gather(*(turn(store, cid, "bench") for cid in ids))  # warm up: connections, records
        rounds = max(1, turns // conversations)
        pids = kind.server_pids()
        cpu0, server0, wall0 = time.process_time(), _proc_cpu(pids), time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(turn(store, cid, "bench") for cid in ids))
        wall = time.perf_counter() - wall0
        done = rounds * conversations
        return {"cpu": (time.process_time() - cpu0) / done, "server": (_proc_cpu(pids) - server0) / done,
                "wall": wall / done, "rate": done / wall}


async def queued_wait(kind: Kind, handovers: int, **waiter_kwargs: Any) -> list[float]:
    """Seconds from the holder's releasing save to the waiter holding the lease, one per handover."""
    rng = random.Random(7)
    waits = []
    async with opened(kind) as holder, opened(kind, **waiter_kwargs) as waiter:
        cid = f"queued-{uuid.uuid4().hex[:8]}"
        await turn(holder, cid, "warm")
        await turn(waiter, cid, "warm")
        for n in range(handovers + 1):  # the first, untimed, also opens the waiter's LISTEN connection
            lease = await holder.acquire(cid, owner="holder", ttl=30.0, wait=5.0)
            record = await holder.load(cid)
            waiting = asyncio.create_task(waiter.acquire(cid, owner="waiter", ttl=30.0, wait=10.0))
            await asyncio.sleep(rng.uniform(0.02, 0.08))
            started = time.perf_counter()
            await _save(holder, record.replace(turns=record.turns + 1), lease, release=True)
            taken = await waiting
            if n:
                waits.append(time.perf_counter() - started)
            await waiter.release(taken)
    return waits


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, kinds(Path(tmp), args.postgres_url) as found:
        results: dict[tuple[str, int], dict[str, float]] = {}
        for conversations in (1, args.conversations):
            label = "one at a time" if conversations == 1 else f"{conversations} conversations in flight"
            print(f"\n## Store calls per turn, {label}")
            print(f"{'store':<10} {'our CPU':>10} {'server CPU':>11} {'wall':>10} {'turns/s':>9}")
            for kind in found:
                r = results[(kind.name, conversations)] = await per_turn(kind, args.turns, conversations)
                print(f"{kind.name:<10} {us(r['cpu']):>10} {us(r['server']):>11} {us(r['wall']):>10} "
                      f"{r['rate']:>9,.0f}")
        print(f"\n## Queued-turn wait (holder's releasing save -> waiter holds the lease), {args.handovers} handovers")
        print(f"{'store':<22} {'median':>8} {'p95':>8} {'max':>8}")
        waits: dict[str, list[float]] = {}
        for kind in found:
            modes = [(f"{kind.name} notify", {}), (f"{kind.name} polling", {"notify": False})] \
                if kind.name.startswith("postgres") else [(kind.name, {})]
            for mode, kwargs in modes:
                w = waits[mode] = await queued_wait(kind, args.handovers, **kwargs)
                print(f"{mode:<22} {ms(median(w)):>8} {ms(percentile(w, 95)):>8} {ms(max(w)):>8}")
        print()
        for kind in found:
            if kind.name == "sqlite":
                continue
            for conversations in (1, args.conversations):
                mine, base = results[(kind.name, conversations)], results[("sqlite", conversations)]
                where = "one at a time" if conversations == 1 else f"{conversations} in flight"
                print(f"RATIO store cost {where} | {kind.name} vs sqlite, our CPU per turn: "
                      f"{mine['cpu'] / base['cpu']:.2f}x; with the server's: "
                      f"{(mine['cpu'] + mine['server']) / (base['cpu'] + base['server']):.2f}x")
        for name in ("postgres", "postgres-async"):
            if f"{name} notify" in waits:
                notify = statistics.median(waits[f"{name} notify"])
                polling = statistics.median(waits[f"{name} polling"])
                print(f"RATIO queued-turn wait | {name} notify vs polling (median): {notify / polling:.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3000, help="turns per store and setting")
    parser.add_argument("--conversations", type=int, default=1000, help="conversations in flight at once")
    parser.add_argument("--handovers", type=int, default=200, help="queued turns timed per store")
    parser.add_argument("--postgres-url", default=os.environ.get("POSTGRES_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' worth")
    args = parser.parse_args(argv)
    if args.smoke:
        args.turns, args.conversations, args.handovers = 100, 50, 10
    header("Store cost per turn (SQLite, Redis, PostgreSQL) and the queued-turn wait")
    print(f"turns: {args.turns}; in flight: {args.conversations}; handovers: {args.handovers}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
