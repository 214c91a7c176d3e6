"""Stores broken for real: a redis-server we SIGKILL and restart empty, freeze (SIGSTOP) and thaw (SIGCONT),
and SQLite on a tmpfs filled to the last byte. Issue 11 findings 3 and 9, at the store's level (the
lifecycle's view of the same faults is in tests/adversarial/)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionforce.errors import ConversationBusy, LeaseLost, StoreUnavailable
from sessionforce.store import ConversationRecord, Lease, RedisStore, SQLiteStore, TranscriptEntry
from tests.redis_server import RedisProcess


def record(cid: str, **fields: Any) -> ConversationRecord:
    values: dict[str, Any] = {"agent_id": "a", "external_session_key": "k", "created_at": 1.0, "last_activity_at": 2.0}
    values.update(fields)
    return ConversationRecord(conversation_id=cid, **values)


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    with RedisProcess() as process:
        yield process


# -- finding 3: Redis restarted empty ----------------------------------------------------------------------


async def test_a_stale_worker_cannot_overwrite_after_redis_restarts_empty(redis_proc: RedisProcess) -> None:
    worker_a = RedisStore.from_url(redis_proc.url, socket_timeout=2)
    worker_b = RedisStore.from_url(redis_proc.url, socket_timeout=2)  # another process, on the same Redis
    try:
        lease_a = await worker_a.acquire("c1", owner="host-a:1", ttl=30.0, wait=0)
        pending = await worker_a.save(record("c1", turns=1), lease=lease_a)  # A's turn is in flight...
        redis_proc.restart_empty()  # ...when Redis loses everything
        lease_b = await worker_b.acquire("c1", owner="host-b:2", ttl=30.0, wait=0)  # B is let in at once
        assert lease_b.fence > lease_a.fence  # from the server's clock: never a fence handed out before
        b_record = await worker_b.save(record("c1", turns=7), lease=lease_b,
                                       transcript=[TranscriptEntry(kind="turn", at=3.0, text="from B")])
        # A comes back with its answer: every write under its old lease is refused.
        for write in (
            worker_a.save(pending.replace(turns=2), lease=lease_a, release=True),
            worker_a.save(record("c1", turns=2), lease=lease_a),  # even one that expects B's version
            worker_a.save(b_record.replace(turns=2), lease=lease_a),
            worker_a.append_transcript("c1", TranscriptEntry(kind="turn", at=4.0, text="from A"), lease=lease_a),
            worker_a.renew(lease_a, ttl=30.0),
        ):
            with pytest.raises(LeaseLost, match="c1"):
                await write
        await worker_a.release(lease_a)  # a no-op: B keeps its lease
        assert isinstance(await worker_a.try_acquire("c1", owner="host-a:1", ttl=5.0), float)
        assert await worker_b.load("c1") == b_record
        assert [e.text for e in await worker_b.transcript("c1")] == ["from B"]
    finally:
        await worker_a.aclose()
        await worker_b.aclose()


async def test_fences_keep_growing_across_restarts(redis_proc: RedisProcess) -> None:
    store = RedisStore.from_url(redis_proc.url, socket_timeout=2)
    try:
        fences = []
        for _ in range(3):
            lease = await store.acquire("c1", owner="A", ttl=30.0, wait=0)
            fences.append(lease.fence)
            await store.release(lease)
            fences.append((await store.acquire("c1", owner="A", ttl=30.0, wait=0)).fence)
            redis_proc.restart_empty()
        assert fences == sorted(set(fences))
    finally:
        await store.aclose()


# -- finding 9: a frozen Redis, and redis-py's resends ---------------------------------------------------


async def test_an_acquire_lost_to_a_frozen_redis_does_not_lock_its_owner_out(redis_proc: RedisProcess) -> None:
    store = RedisStore.from_url(redis_proc.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    other = RedisStore.from_url(redis_proc.url, socket_timeout=2)
    try:
        await store.release(await store.acquire("warm-up", owner="me", ttl=5.0, wait=0))  # scripts loaded
        redis_proc.freeze()
        try:
            with pytest.raises(StoreUnavailable, match="cannot be reached or did not answer"):
                await store.acquire("c1", owner="me", ttl=30.0, wait=0)
        finally:
            redis_proc.thaw()
        await asyncio.sleep(0.3)  # Redis runs what queued up: the lease is ours, and we do not know its fence
        assert isinstance(await other.try_acquire("c1", owner="someone-else", ttl=5.0), float)
        started = time.monotonic()
        lease = await store.acquire("c1", owner="me", ttl=30.0, wait=5.0)
        assert time.monotonic() - started < 1.0  # not the lease's 30 s
        await store.save(record("c1"), lease=lease, release=True)
        assert isinstance(await other.try_acquire("c1", owner="someone-else", ttl=5.0), Lease)
    finally:
        await store.aclose()
        await other.aclose()


class ReplyDropper:
    """A TCP proxy in front of Redis that, when told, cuts the connection the moment Redis answers: the
    command ran, its answer never arrives, and redis-py sends it again on a new connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_next_reply = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ReplyDropper:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    if replies and self.drop_next_reply:
                        self.drop_next_reply = False
                        self.dropped += 1
                        break
                    sink.write(data)
                    await sink.drain()
            for each in (writer, up_writer):
                each.close()

        for task in (asyncio.ensure_future(pump(reader, up_writer, False)),
                     asyncio.ensure_future(pump(up_reader, writer, True))):
            self._tasks.add(task)


async def test_a_write_whose_answer_was_lost_is_resent_and_lands_once(redis_proc: RedisProcess) -> None:
    """The connection breaks after Redis ran the script: redis-py resends it (RedisStore.from_url retries a
    broken connection), the resend recognises its write id, and the call succeeds with the write made once,
    where a version check alone would have answered StaleRecord (or LeaseLost, the lease being given up)."""
    async with ReplyDropper(redis_proc.port) as proxy:
        store = RedisStore.from_url(proxy.url, socket_timeout=2)
        try:
            lease = await store.acquire("c1", owner="me", ttl=30.0, wait=0)
            saved = await store.save(record("c1"), lease=lease)
            proxy.drop_next_reply = True
            await store.append_transcript("c1", TranscriptEntry(kind="turn", at=1.0, text="once"), lease=lease)
            proxy.drop_next_reply = True
            final = await store.save(saved.replace(turns=1), lease=lease, release=True,
                                     transcript=[TranscriptEntry(kind="turn", at=2.0, text="last")])
            assert proxy.dropped == 2  # both answers were lost, and both calls succeeded
            assert final == saved.replace(turns=1, version=2)
            assert await store.load("c1") == final
            assert [e.text for e in await store.transcript("c1")] == ["once", "last"]  # once each
            assert isinstance(await store.try_acquire("c1", owner="other", ttl=5.0), Lease)  # given up
        finally:
            await store.aclose()


async def test_a_resent_write_is_reported_done_and_applied_once(redis_url: str, redis_prefix: str) -> None:
    """The connection dropped after Redis ran the script, and redis-py sent it again (same write id): the
    second run reports success instead of a StaleRecord or LeaseLost for a write that did land."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    store._write_id = lambda: "resent-write"  # type: ignore[method-assign]  # both runs carry one id
    try:
        lease = await store.acquire("c1", owner="me", ttl=30.0, wait=0)
        entry = TranscriptEntry(kind="turn", at=1.0, text="one")
        first = await store.save(record("c1"), lease=lease, transcript=[entry], release=True)
        again = await store.save(record("c1"), lease=lease, transcript=[entry], release=True)  # the resend
        assert again == first
        assert await store.load("c1") == first
        assert await store.transcript("c1") == [entry]
        await store.append_transcript("c1", entry)  # the same id again (no lease): applied once too
        assert await store.transcript("c1") == [entry]
        store._write_id = lambda: "a-new-write"  # type: ignore[method-assign]
        with pytest.raises(LeaseLost):  # a different write under the given-up lease is refused as ever
            await store.save(first, lease=lease)
    finally:
        await store.aclose()


# -- finding 9: SQLite on a full disk ---------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(size: str = "2m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (needs root; skipped elsewhere, saying why)."""
    if os.geteuid() != 0:
        pytest.skip("filling a disk needs a tmpfs of its own, and mounting one needs root")
    with tempfile.TemporaryDirectory(prefix="sf-full-disk-") as mountpoint:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mountpoint],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        try:
            yield Path(mountpoint)
        finally:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the disk is full, to the last byte."""
    with open(path, "ab", buffering=0) as out:
        block = b"\0" * 65536
        while block:
            try:
                out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                block = block[: len(block) // 2]


async def test_a_full_disk_is_store_unavailable_and_does_not_lock_the_owner_out() -> None:
    with small_disk() as disk:
        store = SQLiteStore(disk / "sessions.db")
        lease = await store.acquire("c1", owner="me", ttl=30.0, wait=0)
        saved = await store.save(record("c1"), lease=lease)
        fill(disk / "filler")
        big = TranscriptEntry(kind="turn", at=1.0, text="x" * 500_000)  # needs pages the disk no longer has
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="full") as caught:
            await store.save(saved.replace(turns=1), lease=lease, transcript=[big], release=True)
        assert time.monotonic() - started < 2.0  # said at once, not after busy_timeout
        assert "sent" not in str(caught.value)
        with pytest.raises(ConversationBusy):  # the lease is still held: nobody else gets in...
            await store.acquire("c1", owner="someone-else", ttl=5.0, wait=0)
        (disk / "filler").unlink()
        started = time.monotonic()
        again = await store.acquire("c1", owner="me", ttl=30.0, wait=5.0)  # ...but its owner does, at once
        assert time.monotonic() - started < 1.0
        assert again.fence > lease.fence
        assert (await store.save(saved.replace(turns=1), lease=again, release=True)).version == 2
        assert await store.transcript("c1") == []  # the refused save appended nothing
        await store.aclose()
