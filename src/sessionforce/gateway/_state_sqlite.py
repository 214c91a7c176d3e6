"""The gateway's shared state in one SQLite file: several worker processes on one machine.

Like the conversation store (and for the same reasons): stdlib ``sqlite3`` on the event loop, WAL mode,
SQLite's own busy handler off and a locked file retried with an ``asyncio.sleep`` backoff. Other
processes' appends are found by polling the append order (``seq``) every ``poll`` seconds: SQLite has no
notifications, and one indexed query per worker per poll costs next to nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sessionforce.gateway._state import Event, MessageClaim, NewEvent, StateUnavailable

__all__ = ["SQLiteState"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL, id INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
    turn TEXT NOT NULL, origin TEXT NOT NULL, at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS gateway_events_conversation ON gateway_events (conversation_id, id);
CREATE TABLE IF NOT EXISTS gateway_streams (conversation_id TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_messages (
    conversation_id TEXT NOT NULL, message_id TEXT NOT NULL, claim TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
);
CREATE INDEX IF NOT EXISTS gateway_messages_at ON gateway_messages (at);
CREATE TABLE IF NOT EXISTS gateway_counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_jobs (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)
"""

_HIT = (
    "INSERT INTO gateway_counters (key, count, ends) VALUES (?1, 1, ?2 + ?3) ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN ends <= ?2 THEN 1 ELSE count + 1 END, ends = CASE WHEN ends <= ?2 THEN ?2 + ?3 ELSE ends END "
    "RETURNING count, ends"
)
_PURGE_BATCH = 10_000


class SQLiteState:
    """A :class:`~sessionforce.gateway._state.GatewayState` in one SQLite file."""

    def __init__(self, path: str | Path, *, origin: str, event_retention: int, retention: float,
                 clock: Callable[[], float], busy_timeout: float = 10.0, poll: float = 0.05) -> None:
        self.path = Path(path).expanduser()
        self.where = f"sqlite file {str(self.path)!r}"
        self._origin = origin
        self._keep = event_retention
        self._retention = retention
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._poll = poll
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise StateUnavailable(f"The gateway needs SQLite 3.35 or newer; this Python has {sqlite3.sqlite_version}. "
                                   "What to do: use a newer Python build, or redis://.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            if str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() != "wal":
                raise sqlite3.OperationalError("the file cannot be switched to WAL mode")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, exc: BaseException) -> StateUnavailable:
        return StateUnavailable(f"The gateway's {self.where} cannot be used ({exc}). What to do: check that the "
                                "directory is writable and the file is on a local disk.")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` as one transaction, retrying asynchronously while another process writes."""
        deadline: float | None = None
        delay = 0.0005
        while True:
            try:
                with self._mutex:
                    if self._conn is None:
                        self._conn = self._open()
                    return fn(self._conn, *args)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise self._unavailable(exc) from exc
                now = asyncio.get_running_loop().time()
                if deadline is None:
                    deadline = now + self._busy_timeout
                elif now >= deadline:
                    raise self._unavailable(exc) from exc
            except (sqlite3.DatabaseError, OSError) as exc:
                raise self._unavailable(exc) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- operations -----------------------------------------------------------------------------------

    async def append(self, batches: Mapping[str, Sequence[NewEvent]]) -> dict[str, int | StateUnavailable]:
        """See :meth:`GatewayState.append` (all conversations in one transaction)."""
        try:
            return dict(await self._run(_append, dict(batches), self._origin, self._clock(), self._keep))
        except StateUnavailable as exc:
            return dict.fromkeys(batches, exc)

    async def read(self, conversation_id: str, after: int, limit: int) -> list[Event]:
        """See :meth:`GatewayState.read`."""
        rows = await self._run(_select, "SELECT id, type, data, turn FROM gateway_events WHERE conversation_id = ? "
                               "AND id > ? ORDER BY id LIMIT ?", (conversation_id, after, limit))
        return [Event(*row) for row in rows]

    async def last_id(self, conversation_id: str) -> int:
        """See :meth:`GatewayState.last_id`."""
        rows = await self._run(_select, "SELECT last_id FROM gateway_streams WHERE conversation_id = ?",
                               (conversation_id,))
        return int(rows[0][0]) if rows else 0

    async def claim(
        self, conversation_id: str, message_id: str, fingerprint: str, owner: str, ttl: float
    ) -> tuple[bool, MessageClaim]:
        """See :meth:`GatewayState.claim`."""
        return await self._run(_claim, conversation_id, message_id, fingerprint, owner, self._clock(), ttl)

    async def renew(
        self, conversation_id: str, message_id: str, owner: str, ttl: float, *, take_over_as: str | None = None
    ) -> bool:
        """See :meth:`GatewayState.renew`."""
        return await self._run(_change, conversation_id, message_id, owner, self._clock(), "renew", ttl,
                               take_over_as)

    async def settle(self, conversation_id: str, message_id: str, owner: str, outcome: str | None) -> bool:
        """See :meth:`GatewayState.settle`."""
        return await self._run(_change, conversation_id, message_id, owner, self._clock(), "settle", outcome, None)

    async def message(self, conversation_id: str, message_id: str) -> MessageClaim | None:
        """See :meth:`GatewayState.message`."""
        rows = await self._run(_select, "SELECT claim FROM gateway_messages WHERE conversation_id = ? AND "
                               "message_id = ?", (conversation_id, message_id))
        return MessageClaim.from_json(rows[0][0]) if rows else None

    async def hit(self, counters: Sequence[tuple[str, int, float]]) -> float | None:
        """See :meth:`GatewayState.hit`."""
        return await self._run(_hit, list(counters), self._clock())

    async def try_job(self, name: str, owner: str, ttl: float) -> bool:
        """See :meth:`GatewayState.try_job`."""
        now = self._clock()
        rows = await self._run(_select, "INSERT INTO gateway_jobs (name, owner, expires_at) VALUES (?1, ?2, ?3) "
                               "ON CONFLICT (name) DO UPDATE SET owner = ?2, expires_at = ?3 WHERE expires_at <= ?4 "
                               "RETURNING owner", (name, owner, now + ttl, now))
        return bool(rows)

    async def purge(self) -> None:
        """Drop events and message ids older than the retention (a bounded batch per call)."""
        now = self._clock()
        await self._run(_purge, now - self._retention, now)

    async def ping(self) -> None:
        """See :meth:`GatewayState.ping`."""
        await self._run(_select, "SELECT 1", ())

    async def listen(self, on_change: Callable[[str | None], None]) -> None:
        """Poll the append order for other processes' events every ``poll`` seconds."""
        rows = await self._run(_select, "SELECT COALESCE(MAX(seq), 0) FROM gateway_events", ())
        seen = int(rows[0][0])
        on_change(None)
        while True:
            await asyncio.sleep(self._poll)
            try:
                rows = await self._run(_select, "SELECT seq, conversation_id, origin FROM gateway_events WHERE "
                                       "seq > ? ORDER BY seq LIMIT 5000", (seen,))
            except StateUnavailable:
                continue
            if rows:
                seen = int(rows[-1][0])
                for conversation_id in {row[1] for row in rows if row[2] != self._origin}:
                    on_change(conversation_id)

    async def aclose(self) -> None:
        """Close the connection."""
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


# -- transactions (each runs under the mutex, without an await inside) -----------------------------------


def _select(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _append(conn: sqlite3.Connection, batches: dict[str, Sequence[NewEvent]], origin: str, now: float,
            keep: int) -> dict[str, int]:
    last_ids: dict[str, int] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for conversation_id, events in batches.items():
            row = conn.execute(
                "INSERT INTO gateway_streams (conversation_id, last_id) VALUES (?1, ?2) ON CONFLICT (conversation_id) "
                "DO UPDATE SET last_id = last_id + ?2 RETURNING last_id", (conversation_id, len(events))
            ).fetchone()
            last = int(row[0])
            first = last - len(events) + 1
            conn.executemany(
                "INSERT INTO gateway_events (conversation_id, id, type, data, turn, origin, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(conversation_id, first + i, kind, data, turn, origin, now)
                 for i, (kind, data, turn) in enumerate(events)],
            )
            if last > keep:
                conn.execute("DELETE FROM gateway_events WHERE conversation_id = ? AND id <= ?",
                             (conversation_id, last - keep))
            last_ids[conversation_id] = last
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return last_ids


def _claim(conn: sqlite3.Connection, conversation_id: str, message_id: str, fingerprint: str, owner: str,
           now: float, ttl: float) -> tuple[bool, MessageClaim]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT claim FROM gateway_messages WHERE conversation_id = ? AND message_id = ?",
                           (conversation_id, message_id)).fetchone()
        if row is not None:
            conn.execute("COMMIT")
            return False, MessageClaim.from_json(row[0])
        last = conn.execute("SELECT last_id FROM gateway_streams WHERE conversation_id = ?",
                            (conversation_id,)).fetchone()
        claim = MessageClaim("running", fingerprint, owner, now + ttl, int(last[0]) if last else 0)
        conn.execute("INSERT INTO gateway_messages (conversation_id, message_id, claim, at) VALUES (?, ?, ?, ?)",
                     (conversation_id, message_id, claim.to_json(), now))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True, claim


def _change(conn: sqlite3.Connection, conversation_id: str, message_id: str, owner: str, now: float, action: str,
            value: Any, take_over_as: str | None) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        key = (conversation_id, message_id)
        row = conn.execute("SELECT claim FROM gateway_messages WHERE conversation_id = ? AND message_id = ?",
                           key).fetchone()
        claim = MessageClaim.from_json(row[0]) if row else None
        if claim is None or claim.owner != owner or claim.state != "running" or (
                take_over_as is not None and claim.expires_at > now):
            conn.execute("COMMIT")
            return False
        if action == "renew":
            claim.expires_at = now + float(value)
            claim.owner = take_over_as or owner
        elif value is None:
            conn.execute("DELETE FROM gateway_messages WHERE conversation_id = ? AND message_id = ?", key)
            conn.execute("COMMIT")
            return True
        else:
            claim.state, claim.outcome = "done", value
        conn.execute("UPDATE gateway_messages SET claim = ?, at = ? WHERE conversation_id = ? AND message_id = ?",
                     (claim.to_json(), now, *key))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _hit(conn: sqlite3.Connection, counters: list[tuple[str, int, float]], now: float) -> float | None:
    wait: float | None = None
    conn.execute("BEGIN IMMEDIATE")
    try:
        for key, limit, window in counters:
            count, ends = conn.execute(_HIT, (key, now, window)).fetchone()
            if count > limit:
                wait = max(wait or 0.0, float(ends) - now)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return wait


def _purge(conn: sqlite3.Connection, cutoff: float, now: float) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Events are appended in time order: the oldest rows are the front of seq, no index on time needed.
        conn.execute(f"DELETE FROM gateway_events WHERE seq IN (SELECT seq FROM gateway_events ORDER BY seq "
                     f"LIMIT {_PURGE_BATCH}) AND at < ?", (cutoff,))
        conn.execute("DELETE FROM gateway_messages WHERE at < ?", (cutoff,))
        conn.execute("DELETE FROM gateway_counters WHERE ends < ?", (now,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
