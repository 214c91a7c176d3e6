"""`SQLiteStore`: conversation state in one SQLite file, shared safely by several processes on a machine.

The default store. The file runs in WAL mode (readers never wait for the writer) with
``synchronous=NORMAL``: a commit survives the process being killed, the last commits may be lost on a
power cut (pass ``synchronous="FULL"`` to fsync every commit instead).

Why the calls run on the event loop, not in a worker thread: each call is one short transaction (tens of
microseconds, no fsync), and a thread hop costs more CPU than the call itself. What could freeze the loop
is waiting for another process's write lock, so SQLite's own busy handler is off (``busy_timeout=0``):
a locked database answers ``SQLITE_BUSY`` at once, and we retry with an ``asyncio.sleep`` backoff until
``busy_timeout`` seconds have passed, then raise :class:`~sessionforce.errors.StoreUnavailable`.
Writes use ``BEGIN IMMEDIATE`` (take the write lock first) so a transaction never fails half-way on a
lock upgrade; single-statement writes are atomic on their own.

Schema (``PRAGMA user_version`` = 2)::

    conversations(conversation_id PK, version, status, last_activity_at, data JSON)
        index (status, last_activity_at): list_conversations never scans or sorts (without a status
        filter it merges the index's ranges of the statuses, already in order)
    transcript(id INTEGER PK, conversation_id, entry JSON)   index (conversation_id, id)
    leases(conversation_id PK, fence, owner, expires_at)
        one row per conversation ever leased; ``fence`` only grows (release and delete keep the row
        and set ``expires_at`` to 0), so a write fenced by an old lease is refused forever. A fenced
        write also checks ``owner``: a lease is the pair, exactly.

Waiting for a lease polls (the shared loop in :mod:`._lease_wait`); a release through the same store
object wakes its local waiters at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from sessionforce.errors import CorruptRecord, InvalidArgument, StoreUnavailable
from sessionforce.errors._build import lease_lost, store_unavailable, unstorable
from sessionforce.store._lease_wait import check_ttl, check_write
from sessionforce.store._protocol import Store
from sessionforce.store._records import ConversationRecord, ConversationStatus, Lease, TranscriptEntry
from sessionforce.store._sqlite_schema import (
    _LEASE_OK,
    _LIST_SQL,
    _RELEASE,
    _SCHEMA,
    _UPGRADE,
    SCHEMA_VERSION,
    _acquire_tx,
    _delete_tx,
    _fetch_all,
    _fetch_one,
    _is_busy,
    _save_tx,
    _write,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

T = TypeVar("T")

logger = logging.getLogger("sessionforce.store")

_ADVICE = (
    "check that the directory exists and is writable, that the disk has room, that the file is a sessionforce "
    "database on a local disk (not a network share), and that no process holds it locked; or choose another "
    "file with SESSIONFORCE_STORE=sqlite:///path/to/file.db"
)

# Bound on the column hints kept (a hint is dropped at the end of each turn; reads alone can add more).
_COLUMN_HINTS = 4096


class SQLiteStore(Store):
    """A :class:`~sessionforce.store.Store` in one SQLite file, safe for several processes at once.

    ``busy_timeout`` is how long (seconds) one call keeps retrying a database locked by another process
    before raising :class:`~sessionforce.errors.StoreUnavailable`; it never blocks the event loop.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 10.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidArgument(f"synchronous={synchronous!r}: use 'NORMAL' (the default) or 'FULL'.")
        self.path = Path(path).expanduser()
        self._name = f"SQLite {str(self.path)!r}"  # every loaded record names its store: built once, not per load
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        # Guards the connection when the store is shared by event loops in several threads; on one loop
        # it is never contended (each call's transaction runs without an await inside).
        self._mutex = threading.Lock()
        self._released: dict[str, asyncio.Event] = {}
        # conversation id -> (version, status, last_activity_at) last seen here: lets a save that leaves
        # the indexed columns alone skip rewriting the indexes. Dropped when the turn's lease is released.
        self._columns: dict[str, tuple[int, str, float]] = {}

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- plumbing -------------------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException, doing: str) -> StoreUnavailable:
        return store_unavailable(self._name, doing, exc, advice=_ADVICE)

    def _open_sync(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < (3, 24, 0):
            raise store_unavailable(
                self._name, "opening it", f"it needs SQLite 3.24 or newer; this Python has {sqlite3.sqlite_version}",
                advice="use a newer Python build, or another store (memory:// or redis://)",
            )
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Transcripts are personal data: a new file is readable by its owner only (SQLite gives the -wal
            # and -shm files the mode of the database file). An existing file keeps the mode it has.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise self._unavailable(exc, "creating it") from exc
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; timeout=0: never sleep inside SQLite.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            self._init_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"the file cannot be switched to WAL mode (it is in {mode!r} mode)")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise store_unavailable(
                self._name, "opening it", f"schema version {version}, newer than this sessionforce knows "
                f"({SCHEMA_VERSION})", advice="upgrade sessionforce, or use another file",
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have created the schema meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                # Not executescript(): it would COMMIT first and drop our write lock.
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    conn.execute(statement)
                conn.execute(_UPGRADE)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` (one transaction), retrying it asynchronously while the file is locked."""
        deadline: float | None = None
        delay = 0.0005
        while True:
            try:
                with self._mutex:
                    conn = self._conn
                    if conn is None:
                        conn = self._conn = self._open_sync()
                    return fn(conn, *args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise self._unavailable(exc, "running a query") from exc
                loop_now = asyncio.get_running_loop().time()
                if deadline is None:
                    deadline = loop_now + self._busy_timeout
                elif loop_now >= deadline:
                    raise self._unavailable(exc, f"waiting {self._busy_timeout:g}s for another process's lock") from exc
            except sqlite3.DatabaseError as exc:
                raise self._unavailable(exc, "reading it") from exc
            except UnicodeEncodeError as exc:  # binding a str that is not Unicode text (a lone surrogate)
                raise unstorable(f"conversation id {exc.object!r}", exc) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- the Store protocol ---------------------------------------------------------------------------

    async def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        row = await self._run(
            _fetch_one, "SELECT data FROM conversations WHERE conversation_id = ?", (conversation_id,)
        )
        if row is None:
            return None
        record = ConversationRecord.from_stored(row[0], store=self._name, conversation_id=conversation_id)
        self._remember(conversation_id, record.version, str(record.status), record.last_activity_at)
        return record

    async def save(
        self,
        record: ConversationRecord,
        *,
        lease: Lease | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: bool = False,
    ) -> ConversationRecord:
        """Compare-and-save, lease and version checked (``transcript`` appended and, with ``release``, the
        lease given up) in one transaction; see ``Store``."""
        check_write(record.conversation_id, lease, release)
        saved = record.replace(version=record.version + 1)
        conversation_id, status, last_activity_at = record.conversation_id, str(saved.status), saved.last_activity_at
        await self._run(
            _save_tx,
            conversation_id,
            record.version,
            lease,
            self._clock(),
            status,
            last_activity_at,
            saved.to_json(),
            [entry.to_json() for entry in transcript] if transcript else [],
            self._columns.get(conversation_id) == (record.version, status, last_activity_at),
            release,
        )
        if not release:
            self._remember(conversation_id, saved.version, status, last_activity_at)
        else:
            self._columns.pop(conversation_id, None)
            self._wake(conversation_id)
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, lease: Lease | None = None
    ) -> None:
        """Append one transcript entry (with ``lease``: only while it is exactly the current one)."""
        check_write(conversation_id, lease)
        if lease is None:
            sql = "INSERT INTO transcript (conversation_id, entry) VALUES (?, ?)"
            args: tuple[Any, ...] = (conversation_id, entry.to_json())
        else:
            # One statement, so the lease check and the insert are one atomic step.
            sql = f"INSERT INTO transcript (conversation_id, entry) SELECT ?, ? WHERE {_LEASE_OK}"
            args = (conversation_id, entry.to_json(), conversation_id, lease.fence, lease.owner, self._clock())
        if await self._run(_write, sql, args) != 1:
            raise lease_lost(conversation_id, lease)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        rows = await self._run(
            _fetch_all, "SELECT entry FROM transcript WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        name = self._name
        return [TranscriptEntry.from_stored(entry, store=name, conversation_id=conversation_id) for (entry,) in rows]

    async def list_conversations(
        self,
        *,
        status: ConversationStatus | None = None,
        idle_for: float | None = None,
        now: float | None = None,
        limit: int = 1000,
    ) -> list[ConversationRecord]:
        """Records filtered by status and idle time, oldest activity first (served by an index)."""
        if limit <= 0:
            return []
        args: list[Any] = []
        if status is not None:
            args.append(str(status))
        if idle_for is not None:
            args.append((now if now is not None else self._clock()) - idle_for)
        args.append(limit)
        sql = _LIST_SQL[(status is not None, idle_for is not None)]
        rows = await self._run(_fetch_all, sql, tuple(args))
        return _readable(rows, self._name)

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (the fence counter stays, so old fences stay dead)."""
        await self._run(_delete_tx, conversation_id)
        self._columns.pop(conversation_id, None)
        self._wake(conversation_id)

    async def try_acquire(self, conversation_id: str, *, owner: str, ttl: float) -> Lease | float:
        """A new lease, or how long the current holder's lasts (one upsert; see ``Store``)."""
        check_ttl(ttl)
        now = self._clock()
        return await self._run(_acquire_tx, conversation_id, owner, now, now + ttl)

    async def wait_released(self, conversation_id: str, timeout: float) -> None:  # noqa: ASYNC109 (protocol)
        """Return at a release through this store object, or after ``timeout`` seconds (other processes'
        releases are seen by the next poll)."""
        if timeout <= 0:
            return
        event = self._released.get(conversation_id)
        if event is None:
            event = self._released[conversation_id] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend ``lease``; ``LeaseLost`` unless it is exactly the current, unexpired one."""
        check_ttl(ttl)
        now = self._clock()
        sql = (
            "UPDATE leases SET expires_at = ? WHERE conversation_id = ? AND fence = ? AND owner = ? "
            "AND expires_at > ?"
        )
        if await self._run(_write, sql, (now + ttl, lease.conversation_id, lease.fence, lease.owner, now)) != 1:
            raise lease_lost(lease.conversation_id, lease)
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up; a no-op unless it is exactly the current one."""
        self._columns.pop(lease.conversation_id, None)
        if await self._run(_write, _RELEASE, (lease.conversation_id, lease.fence, lease.owner)):
            self._wake(lease.conversation_id)

    async def aclose(self) -> None:
        """Close the file (a later call opens it again)."""
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _remember(self, conversation_id: str, version: int, status: str, last_activity_at: float) -> None:
        """Note the indexed columns of a version this store read or wrote (only a hint: see _UPDATE_DATA)."""
        if len(self._columns) >= _COLUMN_HINTS and conversation_id not in self._columns:
            self._columns.clear()
        self._columns[conversation_id] = (version, status, last_activity_at)

    def _wake(self, conversation_id: str) -> None:
        event = self._released.pop(conversation_id, None)
        if event is not None:
            event.set()


def _readable(rows: list[Any], store: str) -> list[ConversationRecord]:
    """The records of listed rows (data, conversation_id, ...); a damaged one is logged and left out, so it
    never hides the others."""
    records = []
    for row in rows:
        try:
            records.append(ConversationRecord.from_stored(row[0], store=store, conversation_id=row[1]))
        except CorruptRecord as exc:
            logger.warning("left out of the listing: %s", exc)
    return records
