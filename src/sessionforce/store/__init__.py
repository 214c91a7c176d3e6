"""Session stores: where conversation records, transcripts and turn leases live.

Choose one by URL (``store=`` or ``SESSIONFORCE_STORE``): ``memory://``, ``sqlite:///path/to/file.db``
(the default, a file under the user's data directory), ``redis://host:port/db`` (optionally
``?prefix=myapp:`` to keep several apps apart in one Redis; keys default to ``sessionforce:``), or
``postgresql://user:password@host:5432/dbname`` (optionally ``?schema=myapp``; default ``sessionforce``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs

from sessionforce.errors import ConfigError
from sessionforce.store.base import (
    ConversationRecord,
    ConversationStatus,
    Lease,
    PendingTurn,
    SessionInfo,
    SessionState,
    Store,
    TranscriptEntry,
)
from sessionforce.store.memory import MemoryStore

__all__ = [
    "ConversationRecord",
    "ConversationStatus",
    "Lease",
    "MemoryStore",
    "PendingTurn",
    "SessionInfo",
    "SessionState",
    "Store",
    "TranscriptEntry",
    "default_sqlite_path",
    "open_store",
]

STORE_ENV = "SESSIONFORCE_STORE"


def default_sqlite_path() -> Path:
    """Where the default SQLite store lives: ``sessions.db`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("sessionforce", appauthor=False)) / "sessions.db"


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names; ``None`` reads ``SESSIONFORCE_STORE``, else the default SQLite file."""
    url = url or os.environ.get(STORE_ENV) or f"sqlite:///{default_sqlite_path()}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"Store URL {url!r} ({STORE_ENV}) has no scheme. What to do: use memory://, "
            "sqlite:///path/to/file.db, redis://host:6379/0 or postgresql://user@host:5432/dbname."
        )
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from sessionforce.store.sqlite import SQLiteStore

        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"Store URL {url!r} ({STORE_ENV}) needs a file path: sqlite:///absolute/path.db "
                "(three slashes, then the path)."
            )
        return SQLiteStore(rest[1:] if rest.startswith("//") else rest)
    if scheme in ("redis", "rediss", "unix"):
        from sessionforce.store.redis import RedisStore

        # Our own query parameter (the rest of the URL is redis-py's): a key prefix per app or environment.
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
        return RedisStore.from_url(rest, prefix=prefixes[-1]) if prefixes else RedisStore.from_url(rest)
    if scheme in ("postgresql", "postgres"):
        from sessionforce.store._postgres import PostgresStore

        # PostgresStore speaks store protocol v2 ahead of the others; the cast goes when base.Store moves to v2.
        return cast("Store", PostgresStore.from_url(url))
    raise ConfigError(
        f"Store URL {url!r} ({STORE_ENV}) has an unknown scheme {scheme!r}. What to do: use memory://, "
        "sqlite:///path/to/file.db, redis://host:6379/0 or postgresql://user@host:5432/dbname."
    )
