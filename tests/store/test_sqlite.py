"""What only the SQLite store promises: its file, schema, indexes, and behaviour under another process's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from sessionforce.errors import StoreUnavailable
from sessionforce.store import ConversationRecord, ConversationStatus, SQLiteStore
from sessionforce.store._sqlite_schema import SCHEMA_VERSION


def record(cid: str) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=cid, agent_id="a", external_session_key="k", created_at=1.0, last_activity_at=2.0
    )


async def test_first_use_creates_directories_wal_file_and_versioned_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "sessions.db"
    store = SQLiteStore(path)
    assert not path.exists()  # nothing happens until first use
    await store.save(record("c1"))
    await store.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    reopened = SQLiteStore(path)  # a second open finds the schema and keeps the data
    assert (await reopened.load("c1")) is not None
    await reopened.aclose()


@pytest.mark.parametrize(
    ("status", "idle"),
    [(ConversationStatus.IDLE, 10.0), (ConversationStatus.ACTIVE, None), (None, 10.0), (None, None)],
)
async def test_list_conversations_is_served_by_an_index(
    tmp_path: Path, status: ConversationStatus | None, idle: float | None
) -> None:
    from sessionforce.store._sqlite_schema import _LIST_SQL

    store = SQLiteStore(tmp_path / "s.db")
    await store.load("warm-up")  # creates the schema
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "s.db")
    sql = _LIST_SQL[(status is not None, idle is not None)]
    args = [a for a in (status and str(status), idle) if a is not None] + [10]
    plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
    conn.close()
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort step: the index gives the order


async def test_a_version_1_file_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.save(record("c1"))
    await store.aclose()
    conn = sqlite3.connect(path)  # what version 1 had: an index on last_activity_at alone
    conn.execute("CREATE INDEX conversations_activity ON conversations (last_activity_at)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    reopened = SQLiteStore(path)
    assert (await reopened.load("c1")) is not None
    assert [r.conversation_id for r in await reopened.list_conversations()] == ["c1"]
    await reopened.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "conversations_activity" not in indexes
    assert "conversations_status_activity" in indexes


async def test_a_data_only_save_never_leaves_the_indexed_columns_behind(tmp_path: Path) -> None:
    """A save that keeps status and activity skips the index columns; if the row changed under another
    process meanwhile (deleted and created again at the same version), the full write still runs."""
    a, b = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    v1 = await a.save(record("c1"))  # idle, activity 2.0; `a` remembers those columns for version 1
    await b.delete("c1")
    await b.save(record("c1").replace(status=ConversationStatus.ACTIVE, last_activity_at=50.0))  # version 1 again
    v2 = await a.save(v1.replace(turns=7))  # `a` believes the columns are unchanged: they are not
    assert await b.load("c1") == v2
    assert [r.conversation_id for r in await b.list_conversations(status=ConversationStatus.IDLE)] == ["c1"]
    assert await b.list_conversations(status=ConversationStatus.ACTIVE) == []
    assert [r.turns for r in await b.list_conversations(idle_for=10.0, now=12.5)] == [7]  # activity 2.0 again
    await a.aclose()
    await b.aclose()


async def test_a_path_that_cannot_be_created_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SQLiteStore(blocker / "sessions.db")
    with pytest.raises(StoreUnavailable, match="a-file") as caught:
        await store.load("c1")
    assert "SESSIONFORCE_STORE" in str(caught.value)


async def test_a_file_that_is_not_a_database_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnavailable, match=r"junk\.db"):
        await SQLiteStore(path).load("c1")


async def test_a_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreUnavailable, match="upgrade sessionforce"):
        await SQLiteStore(path).load("c1")


async def test_another_process_lock_neither_blocks_the_loop_nor_fails_early(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout=5.0)
    await store.save(record("c1"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    save = asyncio.create_task(store.save(record("c2")))
    await asyncio.sleep(0.3)
    assert not save.done()
    other.execute("COMMIT")
    assert (await asyncio.wait_for(save, 2)).version == 1
    tick_task.cancel()
    assert ticks >= 30  # the loop kept running (~60 ticks in 0.3 s) while the save waited
    other.close()
    await store.aclose()


async def test_a_lock_held_past_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    await store.load("c1")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="another process's lock"):
        await store.save(record("c1"))
    assert 0.19 <= time.monotonic() - started < 1.5
    other.execute("ROLLBACK")
    other.close()
    assert (await store.save(record("c1"))).version == 1  # and it recovers once the lock is gone
    await store.aclose()
