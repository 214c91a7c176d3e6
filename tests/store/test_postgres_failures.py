"""The PostgreSQL store when things go wrong: a server that is down, read-only, out of connections,
restarted, or that kills our connection mid-statement; schemas made by several processes at once; a role
that is no superuser. Each failure is a ``StoreUnavailable`` that names the server, never its password,
and never claims anything about delivery (only the lifecycle knows that).

Restarts and connection starvation happen on a cluster of the test's own (others share 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from sessionforce.errors import StoreUnavailable
from sessionforce.store import ConversationRecord, Lease, TranscriptEntry
from sessionforce.store._postgres import PostgresStore
from tests.postgres_server import Cluster, PostgresUnavailable, drop_schema, skip_or_fail, throwaway_cluster

SPAWN = multiprocessing.get_context("spawn")
CANARY = "CANARY-pg-password-" + uuid.uuid4().hex


def record(cid: str = "c1", **fields: Any) -> ConversationRecord:
    return ConversationRecord(conversation_id=cid, agent_id="a", external_session_key="k", created_at=1.0,
                              last_activity_at=time.time(), **fields)


def assert_honest(exc: BaseException) -> None:
    """Names the server, hides the password, claims nothing about the agent."""
    text = f"{exc} {exc!r}"
    assert "PostgreSQL at postgresql://" in text
    assert CANARY not in text
    assert "nothing was sent" not in text.lower()


def with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{CANARY}@", 1)


@pytest.fixture
async def stores(postgres_url: str, postgres_schema: str) -> AsyncIterator[list[PostgresStore]]:
    """A list the test adds stores to; all closed after it."""
    made: list[PostgresStore] = []
    yield made
    for store in made:
        await store.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the shared server ---------------------------------------------------------------------------------


async def test_a_server_that_is_down_fails_fast_and_hides_the_password(stores: list[PostgresStore]) -> None:
    store = PostgresStore.from_url(f"postgresql://postgres:{CANARY}@127.0.0.1:{_free_port()}/test",
                                   pool_timeout=1.0)
    stores.append(store)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot be reached") as caught:
        await store.load("c1")
    assert time.monotonic() - started < 5.0
    assert_honest(caught.value)
    assert CANARY not in repr(store)


async def test_a_read_only_server_says_so(postgres_url: str, postgres_schema: str,
                                          stores: list[PostgresStore]) -> None:
    writer = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}")
    stores.append(writer)
    saved = await writer.save(record())
    # A hot standby answers every write like this (default_transaction_read_only is how tests get one).
    standby = PostgresStore.from_url(
        f"{with_password(postgres_url)}?schema={postgres_schema}&options=-c%20default_transaction_read_only%3Don"
    )
    stores.append(standby)
    assert await standby.load("c1") == saved  # reads still work
    with pytest.raises(StoreUnavailable, match="read-only") as caught:
        await standby.save(saved.replace(turns=1))
    assert_honest(caught.value)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await standby.try_acquire("c1", owner="A", ttl=5.0)
    assert await writer.load("c1") == saved


async def test_a_pool_out_of_connections_says_so(postgres_url: str, postgres_schema: str,
                                                 stores: list[PostgresStore]) -> None:
    store = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}&pool_max=1&pool_min=1",
                                   pool_timeout=0.5)
    stores.append(store)
    v1 = await store.save(record())
    with psycopg.connect(postgres_url) as blocker:  # holds the row: a save through the only connection waits
        blocker.execute(f'SELECT 1 FROM "{postgres_schema}".conversations FOR UPDATE'.encode())
        stuck = asyncio.create_task(store.save(v1.replace(turns=1)))
        await asyncio.sleep(0.3)
        with pytest.raises(StoreUnavailable, match="out of connections") as caught:
            await store.load("c1")
        assert_honest(caught.value)
        blocker.rollback()
    assert (await stuck).version == 2  # it went on once the row was free
    assert await store.load("c1") == await stuck


async def test_a_connection_killed_mid_statement_fails_that_call_only(postgres_url: str, postgres_schema: str,
                                                                      stores: list[PostgresStore]) -> None:
    store = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}&pool_max=2")
    stores.append(store)
    lease = await store.try_acquire("c1", owner="A", ttl=30.0)
    assert isinstance(lease, Lease)
    v1 = await store.save(record(), lease=lease)
    with psycopg.connect(postgres_url) as admin:
        admin.execute(f'SELECT 1 FROM "{postgres_schema}".conversations FOR UPDATE'.encode())
        entry = TranscriptEntry(kind="turn", at=1.0, text="mid-transaction")
        save = asyncio.create_task(store.save(v1.replace(turns=1), lease=lease, transcript=[entry]))
        pid = None
        for _ in range(100):  # the save's backend, waiting for the row
            with psycopg.connect(postgres_url, autocommit=True) as watcher:
                row = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'sessionforce' "
                    "AND wait_event_type = 'Lock' AND query LIKE %s", (f'%"{postgres_schema}".conversations%',)
                ).fetchone()
            if row is not None:
                pid = row[0]
                break
            await asyncio.sleep(0.05)
        assert pid is not None, "the save never started waiting"
        with psycopg.connect(postgres_url, autocommit=True) as killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        with pytest.raises(StoreUnavailable) as caught:
            await save
        assert_honest(caught.value)
        admin.rollback()
    # Rolled back whole: no record change, no transcript entry; the lease is still A's.
    assert await store.load("c1") == v1
    assert await store.transcript("c1") == []
    assert (await store.save(v1.replace(turns=2), lease=lease, release=True)).version == 2  # a new connection


async def test_several_processes_create_the_schema_at_once(postgres_url: str, postgres_schema: str) -> None:
    url = f"{postgres_url}?schema={postgres_schema}"
    start = SPAWN.Barrier(4)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_open_and_save, args=(url, n, start, results)) for n in range(4)]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=40) for _ in processes]
    for p in processes:
        p.join(10)
    assert outcomes == [None] * 4, outcomes
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute(f'SELECT version FROM "{postgres_schema}".schema_version'.encode()).fetchall() == [(1,)]
        count = conn.execute(f'SELECT count(*) FROM "{postgres_schema}".conversations'.encode()).fetchone()
    assert count == (4,)


def _open_and_save(url: str, n: int, start: Any, results: Any) -> None:
    async def run() -> None:
        store = PostgresStore.from_url(url, pool_max=1)
        start.wait(30)
        try:
            await store.save(record(f"c{n}"))
        finally:
            await store.aclose()

    try:
        asyncio.run(run())
        results.put(None)
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


async def test_a_newer_schema_is_refused(postgres_url: str, postgres_schema: str,
                                         stores: list[PostgresStore]) -> None:
    store = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}")
    await store.load("c1")
    await store.aclose()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{postgres_schema}".schema_version (version) VALUES (99)'.encode())
    later = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}")
    stores.append(later)
    with pytest.raises(StoreUnavailable, match="version 99, newer than"):
        await later.load("c1")


@pytest.fixture
def plain_role(postgres_url: str) -> Iterator[str]:
    """A login role that is no superuser and may not create schemas in the database; dropped after."""
    role = f"sftest_role_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE".encode())
    yield role
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role} CASCADE".encode())
        conn.execute(f"DROP ROLE {role}".encode())


async def test_no_superuser_is_needed_in_a_schema_the_app_owns(postgres_url: str, postgres_schema: str,
                                                                plain_role: str) -> None:
    as_role = postgres_url.replace("postgresql://postgres@", f"postgresql://{plain_role}@", 1)
    denied = PostgresStore.from_url(f"{as_role}?schema={postgres_schema}")
    try:
        with pytest.raises(StoreUnavailable, match="refused permission") as caught:
            await denied.load("c1")  # may not create the schema
        assert "?schema=" in str(caught.value)
    finally:
        await denied.aclose()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # what a DBA does once: a schema for the app
        conn.execute(f'CREATE SCHEMA "{postgres_schema}" AUTHORIZATION {plain_role}'.encode())
    store = PostgresStore.from_url(f"{as_role}?schema={postgres_schema}")
    try:
        lease = await store.try_acquire("c1", owner="A", ttl=5.0)
        assert isinstance(lease, Lease)
        assert (await store.save(record(), lease=lease, release=True)).version == 1
    finally:
        await store.aclose()
    drop_schema(postgres_url, postgres_schema)


async def test_a_lost_notification_connection_falls_back_to_polling_and_comes_back(
    postgres_url: str, postgres_schema: str, stores: list[PostgresStore]
) -> None:
    holder = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}")
    waiter = PostgresStore.from_url(f"{postgres_url}?schema={postgres_schema}&application_name=sf-waiter")
    stores += [holder, waiter]
    lease = await holder.try_acquire("c1", owner="A", ttl=30.0)
    assert isinstance(lease, Lease)
    assert isinstance(await waiter.try_acquire("c1", owner="B", ttl=5.0), float)  # starts listening
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                               "application_name = 'sf-waiter' AND query LIKE 'LISTEN%%'").fetchall()
    assert killed == [(True,)]
    taking = asyncio.create_task(waiter.acquire("c1", owner="B", ttl=5.0, wait=10.0))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await holder.release(lease)
    await asyncio.wait_for(taking, 5.0)
    assert time.monotonic() - started < 2.0  # woken (or polled) long before A's 30 s lease ran out


# -- a cluster of our own --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        with throwaway_cluster(max_connections=12) as running:
            yield running
    except PostgresUnavailable as exc:
        skip_or_fail(f"cannot start a cluster of our own: {exc}")


@pytest.mark.timeout(90)
async def test_a_restart_in_the_middle_of_a_turn_loses_nothing(cluster: Cluster) -> None:
    store = PostgresStore.from_url(f"{cluster.url}?schema=restart_{uuid.uuid4().hex[:8]}&pool_max=3&pool_min=3")
    try:
        lease = await store.try_acquire("c1", owner="A", ttl=60.0)
        assert isinstance(lease, Lease)
        ahead = await store.save(record(turns=0), lease=lease)  # the turn's write-ahead
        await asyncio.to_thread(cluster.restart)  # ... while the agent is answering
        # Leases and records are durable: the turn ends normally, on fresh connections, with no failed call.
        final = await store.save(ahead.replace(turns=1), lease=lease, release=True,
                                 transcript=[TranscriptEntry(kind="turn", at=2.0, text="across a restart")])
        assert await store.load("c1") == final
        assert [e.text for e in await store.transcript("c1")] == ["across a restart"]
        after = await store.try_acquire("c1", owner="B", ttl=60.0)
        assert isinstance(after, Lease)
        assert after.fence > lease.fence
        # A statement in flight when the server goes away fails, and the next call works again.
        stop = asyncio.create_task(asyncio.to_thread(cluster.stop, "fast"))
        with pytest.raises(StoreUnavailable) as caught:
            await _renew_until_it_fails(store, after)
        assert_honest(caught.value)
        await stop
        await asyncio.to_thread(cluster.start)
        assert (await store.save(final.replace(turns=2), lease=await store.renew(after, ttl=60.0))).version == 3
    finally:
        await store.aclose()


async def test_a_server_out_of_connections_says_so(cluster: Cluster) -> None:
    hogs: list[psycopg.Connection[Any]] = []
    store = PostgresStore.from_url(f"{cluster.url}?schema=full_{uuid.uuid4().hex[:8]}", pool_timeout=1.0)
    try:
        with pytest.raises(psycopg.OperationalError):  # take every connection the server has
            _hog_connections(cluster.url, hogs)
        with pytest.raises(StoreUnavailable, match="out of connections") as caught:
            await store.load("c1")
        assert_honest(caught.value)
        hogs.pop().close()
        hogs.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the pool reconnects by itself
            try:
                assert await store.load("c1") is None
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
    finally:
        for hog in hogs:
            hog.close()
        await store.aclose()


async def _renew_until_it_fails(store: PostgresStore, lease: Lease) -> None:
    for _ in range(400):
        await store.renew(lease, ttl=60.0)
        await asyncio.sleep(0.01)


def _hog_connections(url: str, hogs: list[psycopg.Connection[Any]]) -> None:
    for _ in range(50):
        hogs.append(psycopg.connect(url, connect_timeout=2))
