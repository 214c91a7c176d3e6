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
        and set ``expires_at`` to 0), so a write fenced by an old lease is refused forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from sessionforce.errors import ConversationBusy, InvalidArgument, LeaseLost, StaleRecord, StoreUnavailable
from sessionforce.store.base import ConversationRecord, ConversationStatus, Lease, TranscriptEntry

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 2
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    last_activity_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_status_activity ON conversations (status, last_activity_at);
CREATE TABLE IF NOT EXISTS transcript (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transcript_conversation ON transcript (conversation_id, id);
CREATE TABLE IF NOT EXISTS leases (
    conversation_id TEXT PRIMARY KEY,
    fence INTEGER NOT NULL,
    owner TEXT,
    expires_at REAL NOT NULL
);
"""

# Version 1 also indexed last_activity_at alone: an index write more on every turn, for listings the
# (status, last_activity_at) index serves as well. Every statement above and here is idempotent, so one
# pass brings a file of any older version up to date.
_UPGRADE = "DROP INDEX IF EXISTS conversations_activity"

# A lease is live when its row has this fence and has not expired; shared by every fenced write.
_FENCE_OK = "EXISTS (SELECT 1 FROM leases WHERE conversation_id = ? AND fence = ? AND expires_at > ?)"

# One static statement per filter combination (nothing user-given is formatted into SQL).
# Without a status filter, one arm per status (statuses are our enum's values, never input), merged in order.
_EVERY_STATUS = " UNION ALL ".join(
    f"SELECT data, last_activity_at FROM conversations WHERE status = '{status.value}'{{where}}"
    for status in ConversationStatus
)
_LIST_SQL = {
    (False, False): _EVERY_STATUS.format(where="") + " ORDER BY last_activity_at LIMIT ?",
    (True, False): "SELECT data FROM conversations WHERE status = ? ORDER BY last_activity_at LIMIT ?",
    (False, True): _EVERY_STATUS.format(where=" AND last_activity_at <= ?1") + " ORDER BY last_activity_at LIMIT ?2",
    (True, True): "SELECT data FROM conversations WHERE status = ? AND last_activity_at <= ? "
    "ORDER BY last_activity_at LIMIT ?",
}

# Bound on the column hints kept (a hint is dropped at the end of each turn; reads alone can add more).
_COLUMN_HINTS = 4096

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


def _lease_lost(conversation_id: str, fence: int) -> LeaseLost:
    return LeaseLost(
        f"The lease on conversation {conversation_id!r} was lost (fence {fence}); the write was refused. "
        "What to do: nothing was overwritten; retry the turn, it will see the newer state."
    )


class SQLiteStore:
    """A :class:`~sessionforce.store.base.Store` in one SQLite file, safe for several processes at once.

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
        return StoreUnavailable(
            f"The SQLite store {str(self.path)!r} cannot be used while {doing} ({exc}); nothing was sent "
            "to the agent. What to do: check that the directory exists and is writable, that the file is a "
            "sessionforce database on a local disk (not a network share), and that no process holds it "
            "locked; or choose another file with SESSIONFORCE_STORE=sqlite:///path/to/file.db."
        )

    def _open_sync(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < (3, 24, 0):
            raise StoreUnavailable(
                f"The SQLite store needs SQLite 3.24 or newer (upsert); this Python has {sqlite3.sqlite_version}. "
                "What to do: use a newer Python build, or another store (memory:// or redis://)."
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unavailable(exc, "creating its directory") from exc
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
            raise StoreUnavailable(
                f"The SQLite store {str(self.path)!r} has schema version {version}, newer than this sessionforce "
                f"knows ({SCHEMA_VERSION}). What to do: upgrade sessionforce, or use another file."
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
        record = ConversationRecord.from_json(row[0])
        self._remember(conversation_id, record.version, str(record.status), record.last_activity_at)
        return record

    async def save(
        self,
        record: ConversationRecord,
        *,
        fence: int | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        release: Lease | None = None,
    ) -> ConversationRecord:
        """Compare-and-save, fence and version checked (``transcript`` appended and ``release`` given up)
        in one transaction; see ``Store``."""
        saved = record.replace(version=record.version + 1)
        conversation_id, status, last_activity_at = record.conversation_id, str(saved.status), saved.last_activity_at
        await self._run(
            _save_tx,
            conversation_id,
            record.version,
            fence,
            self._clock(),
            status,
            last_activity_at,
            saved.to_json(),
            [entry.to_json() for entry in transcript],
            self._columns.get(conversation_id) == (record.version, status, last_activity_at),
            None if release is None else release.fence,
        )
        if release is None:
            self._remember(conversation_id, saved.version, status, last_activity_at)
        else:
            self._columns.pop(conversation_id, None)
            self._wake(conversation_id)
        return saved

    async def append_transcript(
        self, conversation_id: str, entry: TranscriptEntry, *, fence: int | None = None
    ) -> None:
        """Append one transcript entry (refused with ``LeaseLost`` when ``fence`` is not the live lease's)."""
        if fence is None:
            sql = "INSERT INTO transcript (conversation_id, entry) VALUES (?, ?)"
            args: tuple[Any, ...] = (conversation_id, entry.to_json())
        else:
            # One statement, so the fence check and the insert are one atomic step.
            sql = f"INSERT INTO transcript (conversation_id, entry) SELECT ?, ? WHERE {_FENCE_OK}"
            args = (conversation_id, entry.to_json(), conversation_id, fence, self._clock())
        if await self._run(_write, sql, args) != 1:
            raise _lease_lost(conversation_id, fence or 0)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The whole transcript, oldest first."""
        rows = await self._run(
            _fetch_all, "SELECT entry FROM transcript WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        return [TranscriptEntry.from_json(entry) for (entry,) in rows]

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
        return [ConversationRecord.from_json(row[0]) for row in rows]

    async def delete(self, conversation_id: str) -> None:
        """Forget the record, its transcript and its lease (the fence counter stays, so old fences stay dead)."""
        await self._run(_delete_tx, conversation_id)
        self._columns.pop(conversation_id, None)
        self._wake(conversation_id)

    async def acquire(self, conversation_id: str, *, owner: str, ttl: float, wait: float) -> Lease:
        """Take the lease, polling (2 ms growing to 50 ms) for up to ``wait`` seconds while another holds it.

        A release by this same store object wakes its waiters at once; other processes are seen by polling.
        """
        if not ttl > 0:
            raise InvalidArgument(f"ttl={ttl!r}: a lease needs a positive time to live in seconds.")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        delay = 0.002
        while True:
            now = self._clock()
            got = await self._run(_acquire_tx, conversation_id, owner, now, now + ttl)
            if isinstance(got, Lease):
                return got
            holder, expires_at = got
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConversationBusy(
                    f"Conversation {conversation_id!r} stayed busy for {wait:.1f}s (a turn by {holder} holds it "
                    f"in {str(self.path)!r}). What to do: retry later, or raise the wait bound (lock_wait)."
                )
            event = self._released.setdefault(conversation_id, asyncio.Event())
            try:
                async with asyncio.timeout(min(delay, remaining, max(expires_at - now, 0.001))):
                    await event.wait()
            except TimeoutError:
                pass
            delay = min(delay * 1.5, 0.05)

    async def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease; ``LeaseLost`` if it expired or was taken over."""
        if not ttl > 0:
            raise InvalidArgument(f"ttl={ttl!r}: a lease needs a positive time to live in seconds.")
        now = self._clock()
        sql = "UPDATE leases SET expires_at = ? WHERE conversation_id = ? AND fence = ? AND expires_at > ?"
        if await self._run(_write, sql, (now + ttl, lease.conversation_id, lease.fence, now)) != 1:
            raise _lease_lost(lease.conversation_id, lease.fence)
        return Lease(lease.conversation_id, lease.owner, lease.fence, now + ttl)

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op when a newer lease replaced it."""
        self._columns.pop(lease.conversation_id, None)
        if await self._run(_write, _RELEASE, (lease.conversation_id, lease.fence)):
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


# -- transactions (run synchronously on the connection by SQLiteStore._run) ---------------------------


def _fetch_one(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    return conn.execute(sql, args).fetchone()


def _fetch_all(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def _write(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> int:
    return conn.execute(sql, args).rowcount


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# A save is one conditional write: the version and (when fenced) the live lease are checked by the write
# itself, so it needs no transaction of its own unless transcript rows or a lease release go with it.
_INSERT_RECORD = (
    "INSERT OR IGNORE INTO conversations (conversation_id, version, status, last_activity_at, data) "
    "SELECT ?, 1, ?, ?, ? WHERE (?5 IS NULL OR EXISTS (SELECT 1 FROM leases WHERE conversation_id = ?1 "
    "AND fence = ?5 AND expires_at > ?6))"
)
_UPDATE_RECORD = (
    "UPDATE conversations SET version = ?7 + 1, status = ?2, last_activity_at = ?3, data = ?4 "
    "WHERE conversation_id = ?1 AND version = ?7 AND (?5 IS NULL OR EXISTS (SELECT 1 FROM leases "
    "WHERE conversation_id = ?1 AND fence = ?5 AND expires_at > ?6))"
)
# The same write when the indexed columns already hold the new values (a turn's write-ahead changes only
# the data). SQLite rewrites the index entries of every column named in SET, changed or not, so leaving
# them out halves the write; the WHERE makes it apply only when they really are unchanged.
_UPDATE_DATA = (
    "UPDATE conversations SET version = ?7 + 1, data = ?4 "
    "WHERE conversation_id = ?1 AND version = ?7 AND status = ?2 AND last_activity_at = ?3 AND (?5 IS NULL "
    "OR EXISTS (SELECT 1 FROM leases WHERE conversation_id = ?1 AND fence = ?5 AND expires_at > ?6))"
)
_RELEASE = "UPDATE leases SET owner = NULL, expires_at = 0 WHERE conversation_id = ? AND fence = ?"


def _save_tx(
    conn: sqlite3.Connection,
    conversation_id: str,
    expected: int,
    fence: int | None,
    now: float,
    status: str,
    last_activity_at: float,
    data: str,
    entries: list[str],
    columns_unchanged: bool,
    release_fence: int | None,
) -> None:
    args = (conversation_id, status, last_activity_at, data, fence, now, expected)
    in_transaction = bool(entries) or release_fence is not None
    if in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        if expected == 0:
            saved = conn.execute(_INSERT_RECORD, args[:6]).rowcount == 1
        else:
            saved = columns_unchanged and conn.execute(_UPDATE_DATA, args).rowcount == 1
            saved = saved or conn.execute(_UPDATE_RECORD, args).rowcount == 1
        if not saved:
            # Refused: say why, lease first (as the write checks it first).
            fence_ok = fence is None or conn.execute(f"SELECT {_FENCE_OK}", (conversation_id, fence, now)).fetchone()[0]
            if not fence_ok:
                raise _lease_lost(conversation_id, fence or 0)
            row = conn.execute("SELECT version FROM conversations WHERE conversation_id = ?", (conversation_id,))
            stored = (row.fetchone() or (0,))[0]
            raise StaleRecord(
                f"Conversation {conversation_id!r} was saved by someone else (version {stored}, "
                f"this write expected {expected}). What to do: reload it and apply the change again."
            )
        if entries:
            conn.executemany(
                "INSERT INTO transcript (conversation_id, entry) VALUES (?, ?)",
                [(conversation_id, entry) for entry in entries],
            )
        if release_fence is not None:
            conn.execute(_RELEASE, (conversation_id, release_fence))
        if in_transaction:
            conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


# Taking a lease is one conditional upsert: it inserts the first lease, or replaces an expired one with the
# next fence; a live lease is left alone (no row changes). Once it is ours nobody else can change the row
# until it expires, so reading the fence back afterwards is safe.
_TAKE_LEASE = (
    "INSERT INTO leases (conversation_id, fence, owner, expires_at) VALUES (?1, 1, ?2, ?3) "
    "ON CONFLICT (conversation_id) DO UPDATE SET fence = fence + 1, owner = ?2, expires_at = ?3 "
    "WHERE leases.expires_at <= ?4"
)


def _acquire_tx(
    conn: sqlite3.Connection, conversation_id: str, owner: str, now: float, expires_at: float
) -> Lease | tuple[str, float]:
    """The new lease, or (holder, its expiry) when it is held."""
    taken = conn.execute(_TAKE_LEASE, (conversation_id, owner, expires_at, now)).rowcount == 1
    row = conn.execute("SELECT fence, owner, expires_at FROM leases WHERE conversation_id = ?", (conversation_id,))
    fence, holder, holder_expires = row.fetchone()
    if not taken:
        return holder, holder_expires
    return Lease(conversation_id, owner, fence, expires_at)


def _delete_tx(conn: sqlite3.Connection, conversation_id: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
        conn.execute("DELETE FROM transcript WHERE conversation_id = ?", (conversation_id,))
        conn.execute("UPDATE leases SET owner = NULL, expires_at = 0 WHERE conversation_id = ?", (conversation_id,))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
