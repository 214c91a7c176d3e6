"""The SQLite store's schema, statements and transactions (run synchronously on its connection by
:meth:`SQLiteStore._run <sessionforce.store._sqlite.SQLiteStore._run>`); the schema is described in
:mod:`._sqlite`."""

from __future__ import annotations

import sqlite3
from typing import Any

from sessionforce.errors import LeaseLost, StaleRecord
from sessionforce.store._records import ConversationStatus, Lease

__all__ = [
    "SCHEMA_VERSION",
    "_FENCE_OK",
    "_LIST_SQL",
    "_RELEASE",
    "_SCHEMA",
    "_UPGRADE",
    "_acquire_tx",
    "_delete_tx",
    "_fetch_all",
    "_fetch_one",
    "_is_busy",
    "_lease_lost",
    "_save_tx",
    "_write",
]

SCHEMA_VERSION = 2

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
